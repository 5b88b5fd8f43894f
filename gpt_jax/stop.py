"""Stopping a run cleanly on a signal: Ctrl-C (SIGINT), a scheduler's SIGTERM (SLURM,
Kubernetes, Docker and preemptible cloud VMs all stop jobs with SIGTERM), or the SIGHUP of a
terminal or ssh session that closed. A run whose output's reader left (`| head`, a closed
terminal) stops the same way (OUTPUT_CLOSED).

The first signal only raises a flag; the trainer saves a checkpoint at the next step boundary
and exits. Across processes the flag travels inside the train step (a `pmax` over every
device), so all processes learn of it at the same chunk and save the same step, even when the
signal reached one host only. A second signal aborts at once. During a long evaluation of a
single-process run the first signal does not wait for it (`acting_during`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time

from gpt_jax.errors import Terminated

# The signals a command stops on: the word it says, and the exit status a shell gives a
# process that the signal ended. SIGUSR1 and SIGUSR2 are the warnings a batch scheduler sends
# before a job's time ends (SLURM's --signal); SIGXCPU, the kernel's at a soft CPU-time limit.
SIGNALS = {signal.SIGINT: ("interrupted", 130), signal.SIGTERM: ("terminated", 143),
           signal.SIGHUP: ("hung up", 129), signal.SIGUSR1: ("stopped by SIGUSR1", 138),
           signal.SIGUSR2: ("stopped by SIGUSR2", 140),
           signal.SIGXCPU: ("out of CPU time (SIGXCPU)", 152)}
# Signals the kernel sends again on its own: SIGXCPU every second of CPU time past the soft
# limit. Only the first is a request; the repeats never abort the save it asked for.
REPEATED = {signal.SIGXCPU}
_repeats_seen: set[int] = set()  # by the Python handlers: the watch keeps its own


def a_repeat(signum: int) -> bool:
    """Whether `signum` is the kernel's repeat of a REPEATED signal that a Python handler met
    before: such a repeat is neither a request nor counted as served (the watch skips it too)."""
    if signum not in REPEATED:
        return False
    if signum in _repeats_seen:
        return True
    _repeats_seen.add(signum)
    return False
# Not a signal that reaches us (SIGPIPE stays ignored in Python) but the same request: the
# output's reader is gone (progress.py notices), so the run saves and stops as if SIGPIPE had
# ended it.
OUTPUT_CLOSED = signal.SIGPIPE
STOP_WORDS = {**SIGNALS, OUTPUT_CLOSED: ("output closed", 128 + signal.SIGPIPE)}

# How long a signal may wait for its Python handler before the watch acts for it.
GRACE_SECONDS = 1.0
# One signal delivered twice (by the terminal to the process group and by a launcher that
# forwards it): two copies closer than this are the same signal, whether the watch reads
# them as two bytes of its pipe or the Python handler runs for both.
SAME_SIGNAL_SECONDS = 0.1


class _Watch:
    """Signals that reached the process and signals that a Python handler ran for."""
    started = False
    received = 0
    served = 0
    abort_on_first = True  # False while training: there the first signal asks for a checkpoint
    received_before_training = 0
    act = None  # set by `acting_during`: what a first signal in training does without waiting
    act_lock = threading.Lock()  # the act runs whole or not at all


def served() -> None:
    """Every Python handler of the SIGNALS calls this first."""
    _Watch.served += 1


def watch_native_calls() -> None:
    """CPython runs a Python signal handler only while its main thread runs Python: a signal
    that comes during one long native call (an XLA computation or compilation; the scaled
    GPT's step-0 evaluation on a CPU takes minutes) would wait for that call to end. The C
    handler also writes the signal's number to a wakeup fd. This thread reads it, and when no
    Python handler has run GRACE_SECONDS later, ends the command at once as that handler would
    have: outside training on the first signal, while training on the second ("send it
    again to abort"), or on the first during an evaluation after saving the step reached
    (`acting_during`). Called once, from the main thread."""
    if _Watch.started or threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set the wakeup fd
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    _Watch.started = True
    threading.Thread(target=_watch, args=(read_fd,), daemon=True, name="signal-watch").start()


def _watch(read_fd: int) -> None:
    last = -float("inf")  # when the last counted signal arrived
    repeated: set[int] = set()
    while True:
        data = os.read(read_fd, 64)
        now = time.monotonic()
        for signum in data:
            if signum not in SIGNALS or signum in repeated:
                continue
            if signum in REPEATED:
                repeated.add(signum)
            if _Watch.served < _Watch.received and now - last < SAME_SIGNAL_SECONDS:
                continue
            last = now
            _Watch.received += 1
            check = threading.Timer(GRACE_SECONDS, _act_if_unserved, (signum, _Watch.received))
            check.daemon = True
            check.start()


def _act_if_unserved(signum: int, received: int) -> None:
    if _Watch.served >= received:
        return
    in_training = received - _Watch.received_before_training
    if _Watch.abort_on_first or in_training >= 2:
        exit_now(signum)
    with _Watch.act_lock:
        if _Watch.act is not None:
            _Watch.act(signum)  # ends the process


@contextlib.contextmanager
def acting_during(act):
    """While training, around one long native call that only reads what `act` saves (an
    evaluation, a sample): a first signal that no Python handler has served after
    GRACE_SECONDS runs `act(signum)` on the watch's thread, which saves the step reached and
    ends the process, instead of waiting for the call. A scheduler's grace period (about 30 s)
    can be shorter than one evaluation of the scaled GPT on a CPU. The body's end waits for
    an act that has begun, so the main thread never moves on while it saves."""
    with _Watch.act_lock:
        _Watch.act = act
    try:
        yield
    finally:
        with _Watch.act_lock:
            _Watch.act = None


def end_command(message: str, code: int) -> None:
    """Ends the process at once from any thread: `message` as the command's one last line on
    stderr, and exit status `code`."""
    try:
        sys.stdout.flush()
    except Exception:  # a flush the signal interrupted: what it held is lost either way
        pass
    try:  # sys.stderr's descriptor: fd 2 may be runtime_log's pipe, whose reader os._exit
        os.write(sys.stderr.fileno(), f"{message}\n".encode())  # would stop before it read
    except (OSError, ValueError, AttributeError):  # the terminal is gone: the status tells
        pass
    os._exit(code)


def exit_now(signum: int) -> None:
    """Ends the process at once: one line, and the status a shell gives that signal."""
    from gpt_jax import distributed

    word, status = SIGNALS[signum]
    distributed.failing(word)  # the other processes of a run, which would wait for this one
    end_command(word, status)  # after what a sampler printed so far


def take_back_handlers() -> None:
    """jax.distributed.initialize installs a C++ handler of SIGTERM (for its preemption
    notices) in place of Python's, which then never runs: a scheduler's SIGTERM before the
    first step was lost. Setting each Python handler again puts it back in front."""
    for signum in SIGNALS:
        handler = signal.getsignal(signum)
        if callable(handler):
            signal.signal(signum, handler)


def exit_at_once_on_signals() -> None:
    """Part of a command's first step (first_step.py), before the imports that take seconds:
    until `cli.run` takes over, a signal of SIGNALS ends the command at once with one line,
    instead of a traceback out of whichever module was loading. Nothing has been written
    yet. `cli.run` sets it again once the command's work is done, for the interpreter's
    exit. What the caller ignores stays ignored as training keeps it (`ignored_by_caller`:
    SIGHUP under `nohup`; a background job's inherited SIGINT is not kept, in either)."""
    for signum in SIGNALS:
        if not ignored_by_caller(signum):
            signal.signal(signum, lambda signum, frame: exit_now(signum))


def ignore_signals_at_exit() -> None:
    """The last step of a command's exit, its work done and written: a signal of SIGNALS is
    ignored from now on. Python's finalization puts back the default action (the end of the
    process without a word) of every signal that has a Python handler, not of ignored ones."""
    for signum in SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def importing(frame) -> bool:
    """Whether Python is importing a module at `frame`: a signal's exception there would leave
    the module half-imported, and every later import of it broken."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def ignored_by_caller(signum: int) -> bool:
    """Whether the command was started with `signum` ignored and should keep it so: a SIGHUP
    under `nohup` (the run is meant to outlive its terminal). An ignored SIGINT or SIGTERM is
    not kept: a background job, or a pytest-xdist worker's child, inherits an ignored SIGINT
    without meaning it."""
    return signum == signal.SIGHUP and signal.getsignal(signum) is signal.SIG_IGN


class StopRequest:
    """Installed while training; `requested` becomes True at the first signal of SIGNALS, or
    when `request` is called (the output's reader left)."""

    def __init__(self, notify=print):
        self.requested = False
        self.signum: int | None = None
        self._first = -float("inf")  # when the first signal came
        self._notify = notify
        self._previous: dict[int, object] = {}

    @staticmethod
    def describe(signum: int) -> tuple[str, int]:
        """('interrupted', 130), ('terminated', 143), ...: the word for the message and the
        exit status a shell gives a process ended by that signal."""
        return STOP_WORDS.get(signum, SIGNALS[signal.SIGINT])

    def request(self, signum: int) -> None:
        """Asks for a checkpoint and a stop as the first `signum` would, once."""
        if not self.requested:
            self.requested, self.signum = True, signum

    def _handle(self, signum, frame) -> None:
        if a_repeat(signum):
            return
        served()
        now = time.monotonic()
        if self.requested and signum == self.signum and now - self._first < SAME_SIGNAL_SECONDS:
            return  # one signal delivered twice (the terminal's and a launcher's): not a second
        if self.requested:  # the second signal: stop now, without saving
            raise KeyboardInterrupt if signum == signal.SIGINT else Terminated(signum)
        self.requested, self.signum, self._first = True, signum, now
        abort = "another signal aborts" if signum in REPEATED else "send it again to abort"
        self._notify(f"{signal.Signals(signum).name}: saving a checkpoint at the next step "
                     f"boundary, then stopping ({abort})")

    def __enter__(self) -> StopRequest:
        for signum in SIGNALS:
            if not ignored_by_caller(signum):
                self._previous[signum] = signal.signal(signum, self._handle)
        _Watch.abort_on_first, _Watch.received_before_training = False, _Watch.received
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        _Watch.abort_on_first = True
