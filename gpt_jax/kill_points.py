"""A test hook for real crashes at exact points: GPT_JAX_KILL_AT="save:20" makes the trainer
SIGKILL itself right after the asynchronous save of step 20 has started; "step:20" right after
step 20 is dispatched; "build:0" as the trainer starts to build, its checkpoints folder made.
GPT_JAX_KILL_SIGNAL=TERM (or INT) sends that signal instead, as a
scheduler would. Unset (always, outside the fault tests), it does nothing."""

import os
import signal

ENV = "GPT_JAX_KILL_AT"
SIGNAL_ENV = "GPT_JAX_KILL_SIGNAL"


def maybe_kill(event: str, step: int) -> None:
    if os.environ.get(ENV) == f"{event}:{step}":
        os.kill(os.getpid(), getattr(signal, "SIG" + os.environ.get(SIGNAL_ENV, "KILL")))
