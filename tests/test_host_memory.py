"""keep_freed_memory: after it, a call's big buffers reuse freed memory instead of page-faulting
fresh pages (counted by the kernel, so the check does not depend on timing)."""

import json
import sys

import pytest

from conftest import run_python
from gpt_jax.host_memory import SWITCH

# A fresh process, so that glibc starts from its defaults. The 48 MB output of x * 2 is over
# glibc's largest mmap threshold (32 MB): by default every call maps it anew.
SCRIPT = """
import json, resource
import jax, jax.numpy as jnp
from gpt_jax.host_memory import keep_freed_memory

double = jax.jit(lambda x: x * 2)
x = jnp.ones(12 << 20, jnp.float32)

def faults_per_call(calls=10):
    double(x).block_until_ready()  # the result is dropped at once, freeing its buffer
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        double(x).block_until_ready()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls

default = faults_per_call()
took = keep_freed_memory()
print(json.dumps({"default": default, "took": took, "kept": faults_per_call()}))
"""


def _faults(env=None) -> dict:
    proc = run_python(["-c", SCRIPT], env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux's")
def test_freed_buffers_are_reused_without_page_faults():
    faults = _faults()
    assert faults["took"]
    if faults["default"] < 1000:
        pytest.skip(f"this allocator already reuses freed memory ({faults['default']} faults)")
    # Each call's buffer may come from another thread's malloc arena, and now and then one is
    # mapped afresh (seen: 1 call in 10); by default every one is.
    assert faults["kept"] * 2 < faults["default"], faults


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux's")
def test_the_switch_turns_it_off():
    faults = _faults({SWITCH: "0"})
    assert not faults["took"]
    assert faults["kept"] > faults["default"] / 2, faults
