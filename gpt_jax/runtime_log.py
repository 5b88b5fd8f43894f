"""jax's C++ runtime reporting a lost peer, kept off stderr in a multi-process run.

When a process of the run dies, the others learn it twice at once: their collective fails,
which the CLI turns into one line (cli.py), and jax's coordination client, in a C++ thread,
logs the error (glog lines, a FATAL line and a stack trace) before it would abort the process.
The CLI's line and exit usually come first, but the C++ lines are already on stderr. So file
descriptor 2, where C++ writes, becomes a pipe read by a thread that passes every line on
except those of the coordination runtime, and Python's own sys.stderr writes straight to the
terminal, as before. Where no collective fails in Python (a peer lost while this process
compiles), the runtime's FATAL line is the only news: the thread then says it in one line
and ends the process (exit status 2) before the runtime aborts it.
"""

from __future__ import annotations

import os
import re
import sys
import threading

# A glog line: severity, date, time, thread, file:line].
GLOG = re.compile(rb"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ (?P<file>[\w.]+):\d+\]")
RUNTIME_FILES = (b"coordination_service_agent.cc", b"coordination_service.cc",
                 b"preemption_sync_manager.cc", b"preemption_notifier.cc", b"client.h")
LOST = ("error: another process of this run failed or was stopped (jax's coordination service "
        "lost it); run the same command on every process to resume from the newest checkpoint")
_last_word = threading.Lock()  # held by whoever prints the command's final line


def first_to_speak() -> bool:
    """True once: the caller prints the command's one final line, nobody else does."""
    return _last_word.acquire(blocking=False)


def keep_runtime_failures_off_stderr() -> None:
    """From now on, C++ writes to stderr go through `_pass_on`; Python's go straight out."""
    terminal = os.dup(2)
    sys.stderr.flush()
    sys.stderr = open(terminal, "w", buffering=1, encoding=sys.stderr.encoding,  # noqa: SIM115
                      errors="backslashreplace", closefd=False)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    threading.Thread(target=_pass_on, args=(read_end, terminal), daemon=True,
                     name="runtime_log").start()


def _pass_on(read_end: int, terminal: int) -> None:
    """Copies lines from the pipe to the terminal, leaving out the coordination runtime's:
    each of its glog lines with the lines that continue it, and everything after a FATAL."""
    pending, dropping, dying = b"", False, False
    while chunk := os.read(read_end, 65536):
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            glog = GLOG.match(line)
            if glog:
                dropping = glog["file"] in RUNTIME_FILES
                if dropping and line.startswith(b"F") and not dying:
                    dying = True  # the runtime is about to abort the process: end it first
                    if first_to_speak():
                        os.write(terminal, LOST.encode() + b"\n")
                        os._exit(2)
            if not (dropping or dying):
                os.write(terminal, line + b"\n")
