"""`python exec_with.py SETTING... -- PROGRAM ARG...`: sets each SETTING in this process, then
becomes PROGRAM (execv: the same pid, so a test's signals reach it). What subprocess's
preexec_fn does, without running Python in a child forked from the test's process, whose jax
threads may hold a lock at the fork (Python warns of the deadlock). SETTING: default=INT or
ignore=HUP (a signal's action), AS=BYTES or NOFILE=N (a resource limit, soft and hard)."""

import os
import resource
import signal
import sys


def main(argv: list[str]) -> None:
    end = argv.index("--")
    for setting in argv[:end]:
        name, value = setting.split("=")
        if name in ("default", "ignore"):
            action = signal.SIG_DFL if name == "default" else signal.SIG_IGN
            signal.signal(getattr(signal, f"SIG{value}"), action)
        else:
            limit = int(value)
            resource.setrlimit(getattr(resource, f"RLIMIT_{name}"), (limit, limit))
    os.execv(argv[end + 1], argv[end + 1:])


if __name__ == "__main__":
    main(sys.argv[1:])
