"""What a run shows while it trains: a tqdm bar on a terminal, plain log lines elsewhere."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm


class Progress:
    """Step, loss, tokens/s and ETA. On a terminal a live bar; in CI or a pipe one line every
    `log_interval` steps, so logs stay readable. Silent on every process but the first."""

    def __init__(self, start: int, total: int, tokens_per_step: int, log_interval: int,
                 enabled: bool = True, bar: bool | None = None):
        self.enabled, self.log_interval = enabled, log_interval
        self.tokens_per_step = tokens_per_step
        use_bar = sys.stdout.isatty() if bar is None else bar
        self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True,
                        file=sys.stdout) if enabled and use_bar else None
        self._last = (start, time.perf_counter())

    def update(self, step: int, loss: float, lr: float) -> None:
        """Called with every step's loss, in order."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            rate = self.bar.format_dict.get("rate") or 0.0
            self.bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{rate * self.tokens_per_step:,.0f}",
                                 refresh=False)
        elif step % self.log_interval == 0:
            last_step, last_time = self._last
            now = time.perf_counter()
            rate = (step - last_step) * self.tokens_per_step / max(now - last_time, 1e-9)
            self._last = (step, now)
            print(f"step {step:6d} | loss {loss:.4f} | lr {lr:.2e} | {rate:,.0f} tokens/s",
                  flush=True)

    def restart_clock(self, step: int) -> None:
        """After a pause (compilation, evaluation) that tokens/s should not count."""
        self._last = (step, time.perf_counter())

    def write(self, message: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(message, file=sys.stdout)
        else:
            print(message, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
