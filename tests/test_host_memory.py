"""keep_freed_memory: after it, big blocks reuse freed memory instead of page-faulting fresh
pages (counted by the kernel, so the check does not depend on timing).

The blocks are malloc'd from Python's main thread: XLA's own buffers come from whichever worker
thread runs the call, and a block from another thread's arena is now and then mapped afresh
all the same (in the CPU GPT's train chunk: 0-2,000 faults a call against 11,800), which would
make a check through jax depend on thread scheduling.
"""

import json
import sys

import pytest

from conftest import run_python
from gpt_jax.host_memory import SWITCH

# A fresh process, so that glibc starts from its defaults. 48 MB is over glibc's largest mmap
# threshold (32 MB): by default every malloc maps it anew, and every first write faults.
SCRIPT = """
import ctypes, json, resource
from gpt_jax.host_memory import keep_freed_memory

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE: 4 KiB pages even where huge pages are "always"
SIZE = 48 << 20

def faults_per_block(blocks=10):
    def one():
        p = libc.malloc(SIZE)
        ctypes.memset(p, 1, SIZE)
        libc.free(p)
    one()  # the heap may grow once
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(blocks):
        one()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / blocks

# The baseline is set, not assumed: blocks from 1 MB up are mapped afresh, whatever this
# allocator's defaults (or MALLOC_* variables) would do.
baseline = libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
default = faults_per_block()
took = keep_freed_memory()
print(json.dumps({"baseline": bool(baseline), "default": default, "took": took,
                  "kept": faults_per_block()}))
"""


def _faults(env=None) -> dict:
    proc = run_python(["-c", SCRIPT], env=env)
    assert proc.returncode == 0, proc.stderr
    faults = json.loads(proc.stdout.strip().splitlines()[-1])
    if not faults["baseline"]:
        pytest.skip("this C library has no glibc mallopt")
    # 48 MB of fresh 4 KiB pages: 12,288 faults a block.
    assert faults["default"] > 1000, faults
    return faults


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux's")
def test_freed_buffers_are_reused_without_page_faults():
    faults = _faults()
    assert faults["took"]
    assert faults["kept"] * 100 < faults["default"], faults


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux's")
def test_the_switch_turns_it_off():
    faults = _faults({SWITCH: "0"})
    assert not faults["took"]
    assert faults["kept"] > faults["default"] / 2, faults
