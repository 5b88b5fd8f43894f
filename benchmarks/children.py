"""The commands a benchmark times, run as child processes that end with it: a benchmark
stopped by a signal or an error kills the whole process group it started (a train.py under
/usr/bin/time too), so that no orphan keeps computing, or holding an accelerator, after it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator


@contextlib.contextmanager
def child(cmd: list[str], **popen_kwargs) -> Iterator[subprocess.Popen]:
    """`cmd` started in a process group of its own; the group is killed if the body raises
    (Ctrl-C and SIGTERM reach the benchmark as exceptions: gpt_jax.cli)."""
    with subprocess.Popen(cmd, start_new_session=True, **popen_kwargs) as proc:
        try:
            yield proc
        except BaseException:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            raise


def run(cmd: list[str], **popen_kwargs) -> subprocess.CompletedProcess:
    """subprocess.run(cmd, capture_output=True, text=True), its children ended with it."""
    with child(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
               **popen_kwargs) as proc:
        stdout, stderr = proc.communicate()
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
