"""`ulimit -v`: the address space a process may reserve, which is not the memory it uses.

jax and XLA reserve about 2 GB of address space before any work (each thread's stack, each
allocator arena), most of it never touched. Below that a run fails wherever the next
reservation happens: a thread that cannot start, an abort inside XLA's C++, a segfault. So a
command that uses jax refuses such a limit at its first step, in one line, and the memory
check (memory.py) counts what the limit leaves as memory the run may use. A cgroup's limit
(a container's, `systemd-run -p MemoryMax=`) bounds the memory used, and is the one to set.
"""

from __future__ import annotations

import resource
import sys

GiB = 2**30
# Measured on a 2-core CPU: a tiny CPU run fails below ~1.8 GB (`ulimit -v 1700000`), runs at
# 1.8 GB. Machines with more cores start more threads, and need more.
JAX_RESERVES = 2 * GiB
SETTING = "the address space that ulimit -v allows"


def limit() -> int | None:
    """The soft limit of this process's address space in bytes, or None: unlimited."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY else soft


def left() -> int | None:
    """Bytes of address space this process may still reserve under the limit, or None."""
    bound = limit()
    if bound is None:
        return None
    try:
        with open("/proc/self/statm") as statm:  # sizes in pages; the first is all reserved
            reserved = int(statm.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        reserved = 0
    return max(0, bound - reserved)


def refuse_too_small() -> None:
    """For a command's first step, before jax is imported: a limit below what jax reserves
    ends the command at once with one line and exit status 2."""
    bound = limit()
    if bound is not None and bound < JAX_RESERVES:
        print(f"error: {SETTING} is {bound / GiB:.2f} GiB, below the ~{JAX_RESERVES // GiB} GiB "
              f"that jax and XLA reserve before any work (threads' stacks, allocators' "
              f"arenas): raise it (ulimit -v unlimited); a cgroup's limit (a container's, "
              f"systemd-run -p MemoryMax=...) bounds the memory a run uses instead",
              file=sys.stderr)
        sys.exit(2)


def note() -> str:
    """For an out-of-memory message: the limit, where one is set (it may be what ran out)."""
    bound = limit()
    return "" if bound is None else f" ({SETTING} is {bound / GiB:.2f} GiB: raise it)"
