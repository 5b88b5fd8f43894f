"""What a run shows while it trains: a tqdm bar on a terminal, plain log lines elsewhere."""

from __future__ import annotations

import contextlib
import errno
import math
import os
import sys

from tqdm import tqdm

from gpt_jax.errors import output_failed

# How a write reports that nobody reads the output any more: the pipe's reader left (`| head`),
# or the terminal closed under the run.
READER_GONE = {errno.EPIPE, errno.EIO}


class Progress:
    """Step, loss, tokens/s and ETA. On a terminal a live bar of the training steps, opened by
    the first `unpause()`; in CI or a pipe one line every `log_interval` steps, so logs stay
    readable. Silent on every process but the first.

    When the output's reader is gone, `output_closed` becomes True and the run goes on
    silently (stdout now writes to /dev/null); the trainer then saves and stops, since
    nobody can follow a run that prints to nowhere, and its checkpoint resumes it."""

    def __init__(self, start: int, total: int, log_interval: int,
                 enabled: bool = True, bar: bool | None = None):
        self.enabled, self.log_interval = enabled, log_interval
        self.output_closed = False
        self.use_bar = enabled and (sys.stdout.isatty() if bar is None else bar)
        self.step, self.total = start, total
        self.bar: tqdm | None = None  # opened by the first unpause()

    @contextlib.contextmanager
    def _output(self):
        """Around every write: a reader that left turns the output off instead of failing.
        The bar's own writes to a terminal that closed fail inside tqdm, which only stops
        drawing (it sets miniters to infinity): that is the same sign."""
        try:
            yield
        except OSError as e:
            if e.errno not in READER_GONE:  # a full disk: the command says so and stops
                raise output_failed(e) from None
            self._reader_gone()
        if self.bar is not None and self.bar.miniters == math.inf:
            self._reader_gone()

    def _reader_gone(self) -> None:
        self.output_closed, self.enabled = True, False
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's own flush at exit would fail too
        os.close(devnull)

    def unpause(self) -> None:
        """Training steps go on from now, after a pause that is no step's time. The first call
        opens the bar at the step reached: its rate and ETA start after the start-up (the
        step-0 evaluation, the first call of steps), as tokens/s does. Each later call leaves
        the time since the bar last moved (an evaluation, a checkpoint, a sample) out of them."""
        if not (self.enabled and self.use_bar):
            return
        with self._output():
            if self.bar is None:
                self.bar = tqdm(total=self.total, initial=self.step, unit="step",
                                dynamic_ncols=True, file=sys.stdout)
                self._moved_at = self.bar._time()
            else:  # not tqdm's unpause, which leaves out the time since the bar was last
                # drawn: drawn at most ten times a second, it left out steps of fast chunks too
                pause = self.bar._time() - self._moved_at
                self.bar.start_t += pause
                self.bar.last_print_t += pause

    def update(self, step: int, loss: float, rates: dict[str, float],
               tokens_per_s: float) -> None:
        """Called with every step's loss, in order; `rates` are its learning rates by name ("lr",
        and "muon_lr" in a Muon run: shown as "muon lr"); `tokens_per_s` is the rate since the
        last pause (an evaluation, a checkpoint): steps arrive a chunk at a time, so timing them
        one by one would measure nothing."""
        if not self.enabled:
            return
        self.step = step
        with self._output():
            timed = math.isfinite(tokens_per_s)  # not the first call's steps: start-up's
            if self.bar is not None:
                self.bar.update(step - self.bar.n)
                self._moved_at = self.bar._time()
                self.bar.set_postfix(loss=f"{loss:.4f}", **(
                    {"tok_s": f"{tokens_per_s:,.0f}"} if timed else {}), refresh=False)
            elif not self.use_bar and step % self.log_interval == 0:
                shown = [f"loss {loss:.4f}", *(f"{name.replace('_', ' ')} {rate:.2e}"
                                               for name, rate in rates.items())]
                shown += [f"{tokens_per_s:,.0f} tokens/s"] if timed else []
                print(f"step {step:6d} | " + " | ".join(shown), flush=True)

    def write(self, message: str) -> None:
        if not self.enabled:
            return
        with self._output():
            if self.bar is not None:
                self.bar.write(message, file=sys.stdout)
            else:
                print(message, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            with self._output():
                self.bar.close()
