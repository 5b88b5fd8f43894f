"""What a run reports while it trains: the fixed evaluation batches, tokens per second, and
what process 0 writes (metrics.jsonl, TensorBoard, samples, the loss plot, progress lines)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import ml_collections

from gpt_jax import run_files
from gpt_jax.errors import UserError
from gpt_jax.metrics import MetricsWriter, read_metrics
from gpt_jax.progress import Progress


class ChunkClock:
    """Training tokens per second since the last pause, measured chunk by chunk: a chunk's
    losses reach the host together when it ends, so the time between two chunks' ends is what
    they took."""

    def __init__(self, tokens_per_step: int):
        self.tokens_per_step = tokens_per_step
        self.restart()

    def restart(self) -> None:
        """After a pause (compilation, evaluation, a checkpoint) that must not count."""
        self._last = time.perf_counter()
        self.steps, self.seconds = 0, 0.0

    def chunk_done(self, n: int) -> None:
        """Records that n more steps ended now."""
        now = time.perf_counter()
        self.seconds += now - self._last
        self._last = now
        self.steps += n

    def rate(self) -> float:
        """Tokens per second since the last restart."""
        return self.steps * self.tokens_per_step / self.seconds if self.steps else math.nan


class Reporter:
    """Everything process 0 writes while a run trains; other processes only evaluate."""

    def __init__(self, workdir: Path, config: ml_collections.ConfigDict, is_main: bool,
                 start_step: int):
        self.workdir, self.config, self.is_main = workdir, config, is_main
        t = config.train
        self.progress = Progress(start_step, t.num_steps, t.log_interval, enabled=is_main)
        self.metrics = MetricsWriter(workdir) if is_main else None
        if self.metrics is not None:
            self.metrics.truncate_after(start_step if start_step > 0 else -1)
        self.last_sample: str | None = None

    def step(self, step: int, loss: float, grad_norm: float, rates: dict[str, float],
             tokens_per_s: float) -> None:
        """One step's loss: the progress display, and TensorBoard every log_interval steps."""
        self.progress.update(step, loss, rates, tokens_per_s)
        if self.metrics is not None and step % self.config.train.log_interval == 0:
            self.metrics.scalars(step, {"step_loss": loss, "step_grad_norm": grad_norm})

    def record(self, record: dict, sample: str | None, write: bool = True) -> None:
        """An evaluation: a line on the display, a metrics record and a sample file."""
        tokens_per_s = record["tokens_per_s"]
        self.progress.write(
            f"step {record['step']:6d} | train loss {record['train_loss']:.4f} | "
            f"val loss {record['val_loss']:.4f}" +
            (f" | exact match {record['val_exact_match']:.1%}"
             if "val_exact_match" in record else "") +
            (f" | {tokens_per_s:,.0f} tokens/s" if math.isfinite(tokens_per_s) else ""))
        if sample is not None:
            self.last_sample = sample
        if not (self.is_main and write):
            return
        self.metrics.write(record)
        if self.last_sample is not None:
            samples = self.workdir / run_files.SAMPLES
            try:
                samples.mkdir(exist_ok=True)
            except OSError as e:
                raise UserError(f"cannot write {samples}: {e.strerror}") from None
            run_files.write_atomic(samples / f"step_{record['step']:06d}.txt",
                                 self.last_sample + "\n")

    def finish(self) -> None:
        """The loss plot, drawn from metrics.jsonl (unless train.loss_plot is off)."""
        self.progress.close()
        if not (self.is_main and self.config.train.loss_plot):
            return
        from gpt_jax.plots import plot_losses  # matplotlib: imported only when needed

        plot_losses(read_metrics(self.workdir), self.workdir / run_files.LOSS_PLOT,
                    self.config.description or self.config.model.name)

    def close(self) -> None:
        self.progress.close()
        if self.metrics is not None:
            self.metrics.close()
