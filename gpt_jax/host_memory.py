"""Keeping freed host memory for reuse, so that every call does not page-fault its buffers.

XLA:CPU mallocs each call's temporary buffers (the activations a train chunk keeps for its
backward pass: 46 MB for the CPU GPT) and frees them when the call ends. glibc serves blocks
that large with mmap and hands them back with munmap, so the next call writes to fresh pages
and the kernel zeroes each one on first touch: measured here, 11,800 page faults a call, about
15 ms of a 10-step chunk of the CPU GPT (335 ms). Served from glibc's heap and kept there
after free, the same memory is reused warm. Not reached: blocks over 64 MB that a worker
thread allocates, which glibc always maps. The price: the process holds its peak heap until
exit; GPT_JAX_KEEP_FREED_MEMORY=0 turns it off (and lets you measure what it saves).
"""

from __future__ import annotations

import ctypes
import os
import sys

# From glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1  # free heap kept at the top before glibc returns it to the OS
M_MMAP_MAX = -4  # how many blocks may be served by mmap; 0 serves all of them from the heap
KEEP_BYTES = 1 << 30
SWITCH = "GPT_JAX_KEEP_FREED_MEMORY"


def keep_freed_memory() -> bool:
    """Makes glibc serve big blocks from its heap and keep them after free; True where that
    took effect (Linux with glibc). Elsewhere it changes nothing: macOS has no libc.so.6, and
    musl's mallopt is a stub that returns 0. Call it before the first computation; blocks
    already mapped are unaffected."""
    if not sys.platform.startswith("linux") or os.environ.get(SWITCH, "1") == "0":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
