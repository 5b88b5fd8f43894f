"""train_and_evaluate: build or restore a run in a workdir, train it, evaluate, checkpoint.

The loop never waits for the accelerator without need: step t is dispatched before step
t-1's loss is fetched, so the host prepares the next batch while the device computes.
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax
import ml_collections
import numpy as np

from gpt_jax import faults, run_dir
from gpt_jax.checkpoint import Checkpoints
from gpt_jax.config import validate
from gpt_jax.dataset import (
    TRAIN,
    VAL,
    Corpus,
    eval_stream,
    get_batch,
    load_text,
)
from gpt_jax.errors import Interrupted, UserError
from gpt_jax.layout import BatchLayout
from gpt_jax.metrics import MetricsWriter, read_metrics
from gpt_jax.models import build_model
from gpt_jax.optim import learning_rate_schedule, make_optimizer
from gpt_jax.progress import Progress
from gpt_jax.sampling import sample_texts
from gpt_jax.state import abstract_state, count_params, init_state
from gpt_jax.steps import (
    compile_ahead,
    make_eval_step,
    make_train_chunk,
    replicate,
    replicated_shapes,
    shard,
    unreplicate,
)

LOSS_PLOT = "loss.png"
SAMPLES = "samples"


def _log(*args) -> None:
    if jax.process_index() == 0:
        print(*args, flush=True)


def _check_resume(workdir: Path, config: ml_collections.ConfigDict) -> None:
    """Refuses to resume a different model; reports the training settings that changed."""
    stored = run_dir.load_config(workdir)
    if stored is None:
        return
    changed_model = run_dir.config_differences(stored, config, "model")
    if changed_model:
        raise UserError(f"workdir {workdir} holds a checkpoint of a different model "
                        f"({changed_model[0]}); use a new --workdir or the original config")
    for change in run_dir.config_differences(stored, config, "train") + \
            run_dir.config_differences(stored, config, "data"):
        _log(f"resuming with a changed setting: {change}")


class Trainer:
    """One run: its data, model, compiled steps and state. `run()` trains to num_steps."""

    def __init__(self, config: ml_collections.ConfigDict, workdir: Path):
        validate(config)
        self.config, self.workdir = config, workdir
        self.is_main = jax.process_index() == 0
        t = config.train
        # Everything that can fail on bad input fails before the checkpoint manager starts its
        # background threads.
        self.text = load_text(config.data.path)
        self.corpus = Corpus.from_text(self.text)
        self.corpus.check_block_size(config.model.block_size)
        self.layout = BatchLayout.current(t.batch_size, t.grad_accum_steps)
        self.checkpoints = Checkpoints(workdir, keep=t.keep_checkpoints)
        try:
            self._build()
        except BaseException:
            self.checkpoints.close()
            raise

    def _build(self) -> None:
        t, m = self.config.train, self.config.model
        resume_step = self.checkpoints.latest_step()
        if resume_step is not None:
            _check_resume(self.workdir, self.config)
            stored = run_dir.load_vocab(self.workdir)  # a resumed run keeps its vocabulary
            if stored is not None and stored.chars != self.corpus.tokenizer.chars:
                try:
                    self.corpus = Corpus.from_text(self.text, stored)
                except UserError as e:
                    raise UserError(f"the data does not fit the vocabulary this run was trained "
                                    f"with: {e}") from None
        self.tokenizer = self.corpus.tokenizer
        self.model = build_model(m, self.tokenizer.vocab_size)
        self.optimizer = make_optimizer(t)
        # Every step's learning rate, computed once: asking the schedule (a jax function) for
        # one step at a time would queue behind the running train steps, and the host would wait
        # for them instead of dispatching the next ones.
        schedule = jax.vmap(learning_rate_schedule(t))
        self.learning_rates = np.asarray(schedule(np.arange(t.num_steps)))
        self.tokens = replicate(self.corpus.train)  # the train stream, on every device
        self.eval_batches = {split: self._eval_batches(split) for split in (TRAIN, VAL)}
        # The train and eval steps compile on two other threads while this one builds the
        # state (itself a jitted init, or a restore). XLA compiles mostly on one core, so on a
        # 2-core laptop the CPU GPT's steps are ready about a second sooner than one by one.
        shapes = abstract_state(self.model, self.optimizer, m.block_size)
        replicated = replicated_shapes(shapes)
        start = time.perf_counter()
        with ThreadPoolExecutor(2, thread_name_prefix="compile") as pool:
            chunk = make_train_chunk(self.model, self.optimizer, t.seed, m.block_size)
            # A finished run only evaluates: it need not wait for its train step to compile.
            finished = resume_step is not None and resume_step >= t.num_steps
            train_chunk = (lambda: chunk) if finished else compile_ahead(
                pool, chunk, replicated, self.tokens, self._chunk_starts(0, 0), 0)
            eval_step = compile_ahead(pool, make_eval_step(self.model), replicated.params,
                                      *self.eval_batches[VAL])
            if resume_step is None:
                state = init_state(self.model, self.optimizer, t.seed, m.block_size)
            else:
                resume_step, state = self.checkpoints.restore_newest_good(
                    shapes, quarantine=self.is_main)
                _log(f"resumed from the checkpoint at step {resume_step}")
            self.train_chunk, self.eval_step = train_chunk(), eval_step()
        self.build_seconds = time.perf_counter() - start
        self.num_params = count_params(state.params)
        self.last_sample: str | None = None
        self._last_grad_norm = math.nan
        self.state = replicate(state)

        if self.is_main:
            run_dir.save_config(self.workdir, self.config)
            run_dir.save_vocab(self.workdir, self.tokenizer)
            self.metrics = MetricsWriter(self.workdir)
            self.metrics.truncate_after(-1 if resume_step is None else resume_step)

    @property
    def step(self) -> int:
        return int(unreplicate(self.state.step))

    def _eval_batches(self, split: int) -> tuple[jax.Array, jax.Array]:
        """The same eval_iters batches at every evaluation, so the curves compare like with like."""
        t = self.config.train
        batches = [get_batch(self.corpus.split(split), self.config.model.block_size,
                             t.batch_size, t.seed, eval_stream(split), i, self.layout.rows)
                   for i in range(t.eval_iters)]
        x, y = (np.stack(a) for a in zip(*batches, strict=True))
        return shard(self.layout.for_eval(x)), shard(self.layout.for_eval(y))

    def evaluate(self) -> dict[str, float]:
        """Mean loss over the fixed eval batches of each split, dropout off."""
        return {name: float(unreplicate(self.eval_step(self.state.params, *self.eval_batches[s])))
                for name, s in (("train_loss", TRAIN), ("val_loss", VAL))}

    def save(self) -> None:
        step = self.step
        self.checkpoints.save(step, unreplicate(self.state))
        faults.maybe_kill("save", step)

    def sample(self, max_new_tokens: int, seed: int = 0) -> str:
        """A short sample from the current params, starting from a newline."""
        return sample_texts(self.model, unreplicate(self.state.params), self.tokenizer,
                            self.config.model.block_size, max_new_tokens=max_new_tokens,
                            seed=seed)[0]

    def summary(self) -> str:
        """Parameters per top-level module and in total, and how the batch is laid out."""
        t, m = self.config.train, self.config.model
        params = unreplicate(self.state.params)
        width = max(len(name) for name in params)
        lines = [f"model {m.name}: {self.num_params:,} parameters"]
        lines += [f"  {name:<{width}}  {count_params(tree):>12,}" for name, tree in params.items()]
        lines.append(f"{jax.process_count()} process(es) × {jax.local_device_count()} "
                     f"{jax.devices()[0].platform} device(s) | batch {t.batch_size} × "
                     f"{m.block_size} tokens | steps {self.step} → {t.num_steps}")
        lines.append(f"state and compiled steps ready in {self.build_seconds:.1f} s")
        return "\n".join(lines)

    def run(self) -> dict:
        """Trains from the current step to train.num_steps; returns the last metrics record."""
        t = self.config.train
        step = self.step
        self.progress = Progress(step, t.num_steps, t.batch_size * self.config.model.block_size,
                                 t.log_interval, enabled=self.is_main)
        self.progress.write(self.summary())
        try:
            if step >= t.num_steps:
                return self._record(step, math.nan, math.nan, write=False)
            record = self._record(step, math.nan, math.nan) if step == 0 else None
            stop = _StopFlag(self.progress) if jax.process_count() == 1 \
                else contextlib.nullcontext()
            with stop:
                record = self._loop(step, stop) or record
        finally:
            self.progress.close()
        self.checkpoints.wait()
        if self.is_main:
            from gpt_jax.plots import plot_losses  # matplotlib: imported only when needed

            plot_losses(read_metrics(self.workdir), self.workdir / LOSS_PLOT,
                        self.config.description or self.config.model.name)
        return record

    def _loop(self, step: int, stop) -> dict | None:
        t = self.config.train
        timer = _Throughput(t.batch_size * self.config.model.block_size)
        record, pending = None, None

        def flush():
            nonlocal pending
            if pending is not None:
                self._check(*pending)
                pending = None

        while step < t.num_steps:
            n = min(t.steps_per_call, self._steps_to_next_event(step))
            self.state, metrics = self.train_chunk(self.state, self.tokens,
                                                   self._chunk_starts(step, n), n)
            for s in range(step + 1, step + n + 1):
                faults.maybe_kill("step", s)
            flush()  # the previous chunk's losses: the device is busy with this one meanwhile
            pending = (step, n, metrics)
            step += n
            if timer.compiling:
                flush()
                self.progress.write(f"the first {n} step(s) took {timer.compiled():.1f} s")
                self.progress.restart_clock(step)
            else:
                timer.count(n)
            if step % t.eval_interval == 0 or step == t.num_steps:
                flush()
                record = self._record(step, timer.rate(), self._last_grad_norm)
                timer.restart()
                self.progress.restart_clock(step)
            if step % t.checkpoint_every == 0 or step == t.num_steps:
                flush()  # never save a state whose update was not checked to be finite
                self.save()
            if getattr(stop, "requested", False):
                flush()
                self.save()
                self.checkpoints.wait()
                raise Interrupted(f"interrupted at step {step}: checkpoint saved in "
                                  f"{self.checkpoints.directory}; run the same command to resume")
        flush()
        return record

    def _steps_to_next_event(self, step: int) -> int:
        """Steps until the next evaluation, checkpoint or the end: a chunk never crosses one."""
        t = self.config.train
        return min(t.num_steps, *((step // every + 1) * every
                                  for every in (t.eval_interval, t.checkpoint_every))) - step

    def _chunk_starts(self, step: int, n: int) -> jax.Array:
        """Start offsets of steps step .. step+n-1 (padded to steps_per_call), on the devices."""
        t, m = self.config.train, self.config.model
        return shard(self.layout.chunk_starts(len(self.corpus.train), m.block_size, t.seed,
                                              step, n, t.steps_per_call))

    def _learning_rate(self, step: int) -> float:
        """The rate of the update that ended at `step`; every schedule holds its last value
        past num_steps (a run resumed with fewer steps than it has done)."""
        return float(self.learning_rates[min(max(step - 1, 0), len(self.learning_rates) - 1)])

    def _check(self, first: int, n: int, metrics_Kx2) -> None:
        """Fetches the losses of steps first+1 .. first+n; reports them, and stops on a
        non-finite value (of a loss, or of a gradient, which would have made the params NaN)."""
        for k, (loss, grad_norm) in enumerate(unreplicate(metrics_Kx2)[:n].tolist()):
            self._check_step(first + k + 1, loss, grad_norm)

    def _check_step(self, step: int, loss: float, grad_norm: float) -> None:
        self._last_grad_norm = grad_norm
        if not math.isfinite(loss + grad_norm):
            self.checkpoints.wait()
            last = self.checkpoints.latest_step()
            kept = f"the last good checkpoint (step {last}) is kept" if last is not None \
                else "no checkpoint was written"
            raise UserError(f"non-finite training loss ({loss}) or gradient norm ({grad_norm}) "
                            f"at step {step}: stopped; {kept}. Try a lower "
                            f"--config.train.learning_rate")
        lr = self._learning_rate(step)
        self.progress.update(step, loss, lr)
        if self.is_main and step % self.config.train.log_interval == 0:
            self.metrics.scalars(step, {"step_loss": loss, "step_grad_norm": grad_norm})

    def _record(self, step: int, tokens_per_s: float, grad_norm: float,
                write: bool = True) -> dict:
        """Evaluates; logs, writes the metrics record and a sample (process 0)."""
        losses = self.evaluate()
        record = {"step": step, **losses, "tokens_per_s": tokens_per_s,
                  "lr": self._learning_rate(step), "grad_norm": grad_norm}
        self.progress.write(
            f"step {step:6d} | train loss {losses['train_loss']:.4f} | "
            f"val loss {losses['val_loss']:.4f}" +
            (f" | {tokens_per_s:,.0f} tokens/s" if math.isfinite(tokens_per_s) else ""))
        if self.is_main and self.config.sample.max_new_tokens > 0:
            self.last_sample = self.sample(self.config.sample.max_new_tokens)
        if self.is_main and write:
            self.metrics.write(record)
            if self.last_sample is not None:
                samples = self.workdir / SAMPLES
                samples.mkdir(exist_ok=True)
                run_dir.write_atomic(samples / f"step_{step:06d}.txt", self.last_sample + "\n")
        return record

    def close(self) -> None:
        self.checkpoints.close()
        if self.is_main:
            self.metrics.close()


class _Throughput:
    """Training tokens per second between evaluations, excluding the first call and eval time."""

    def __init__(self, tokens_per_step: int):
        self.tokens_per_step = tokens_per_step
        self.compiling = True
        self.restart()

    def compiled(self) -> float:
        """Ends the first call (slower: allocation, and compiling where it was not done
        ahead); returns its time."""
        seconds = time.perf_counter() - self.start
        self.compiling = False
        self.restart()
        return seconds

    def count(self, n: int) -> None:
        self.steps += n

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.start
        return self.steps * self.tokens_per_step / elapsed if self.steps > 0 else math.nan

    def restart(self) -> None:
        self.start, self.steps = time.perf_counter(), 0


class _StopFlag:
    """Turns the first Ctrl-C into a request to checkpoint and stop after the current step;
    a second one interrupts at once."""

    def __init__(self, progress: Progress):
        self.requested = False
        self.progress = progress

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.progress.write("interrupt: saving a checkpoint after this step "
                            "(Ctrl-C again to abort)")

    def __enter__(self):
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self._previous)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict:
    """Trains `config` in `workdir` (resuming from its latest checkpoint), prints a sample at the
    end, and returns the final metrics record."""
    workdir = run_dir.prepare(workdir)
    lock = run_dir.WorkdirLock(workdir) if jax.process_index() == 0 else contextlib.nullcontext()
    with lock:
        trainer = Trainer(config, workdir)
        try:
            record = trainer.run()
        finally:
            trainer.close()
        if trainer.last_sample is not None:
            _log("sample:\n" + trainer.last_sample)
        return record
