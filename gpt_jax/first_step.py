"""A command's first step, before the imports that take seconds (jax): standard streams that
its caller closed are opened on /dev/null, Ctrl-C, SIGTERM or SIGHUP ends it at once
(stop.py), and an address-space limit too small for jax is refused (address_space.py)."""

import os
import sys

from gpt_jax import address_space, stop

STREAMS = ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w"))
CLOSED: list[str] = []  # the streams that were closed, by name: a sampler refuses "stdout"


def take(uses_jax: bool = True) -> None:
    open_closed_streams()
    stop.exit_at_once_on_signals()
    if uses_jax:
        address_space.refuse_too_small()


def open_closed_streams() -> None:
    """A command started with a standard stream closed (`>&-`, `2>&-`, `<&-`, some launchers)
    would give that file descriptor to the next file it opens, a checkpoint's or the metrics',
    and what jax's C++ runtime then logs to stderr would be written into it; Python also leaves
    sys.stdout None, which the progress display cannot use. Each closed stream is opened on
    /dev/null instead: what is written there is dropped, and reading it finds nothing."""
    for fd, name, mode in STREAMS:
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        CLOSED.append(name)
        opened = os.open(os.devnull, os.O_RDWR)  # the lowest free descriptor: fd itself
        if opened != fd:
            os.dup2(opened, fd)
            os.close(opened)
        setattr(sys, name, open(fd, mode, encoding="utf-8", closefd=False))  # noqa: SIM115
