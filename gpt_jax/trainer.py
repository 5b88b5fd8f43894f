"""train_and_evaluate: build or restore a run in a workdir, train it, evaluate, checkpoint.

The loop never waits for the accelerator without need: chunk i+1 is dispatched before chunk
i's losses are fetched, so the host prepares the next steps while the device computes.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax
import ml_collections
import numpy as np

from gpt_jax import distributed, kill_points, memory, resume, run_files
from gpt_jax.checkpoint import Checkpoints, NoneRestores
from gpt_jax.config import doubts, validate
from gpt_jax.errors import EXIT_USER_ERROR, Stopped, UserError
from gpt_jax.layout import BatchLayout
from gpt_jax.metrics import read_metrics
from gpt_jax.optim import make_optimizer, reported_rates
from gpt_jax.reporting import ChunkClock, Reporter
from gpt_jax.state import TrainState, abstract_state, count_params, init_state
from gpt_jax.steps import (
    compile_ahead,
    make_train_chunk,
    replicate,
    replicated_shapes,
    seed_key_data,
    shard,
    unreplicate,
)
from gpt_jax.stop import OUTPUT_CLOSED, StopRequest, acting_during, end_command
from gpt_jax.task import load_task
from gpt_jax.user_files import user_path
from gpt_jax.xla_options import compiler_options

NO_WISH = np.iinfo(np.int32).max  # a process's steps-per-call wish before a chunk is timed


def _log(*args) -> None:
    if jax.process_index() == 0:
        print(*args, flush=True)


class Trainer:
    """One run: its task (data and model), compiled steps and state. `run()` trains to
    num_steps."""

    def __init__(self, config: ml_collections.ConfigDict, workdir: Path):
        validate(config)
        self.config, self.workdir = config, workdir
        self.is_main = jax.process_index() == 0
        t = config.train
        # Everything that can fail on bad input fails before the checkpoint manager starts its
        # background threads.
        self.layout = BatchLayout.current(t.batch_size, t.grad_accum_steps)
        if config.data.task == "pairs":  # too large is refused before every pair is padded
            # (half a minute for long sources): with a vocabulary of one, then the data's
            memory.require_fits(memory.training_bytes(config, 1, self.layout.micro_batch, 0, 0),
                                "training this config")
        self.task = load_task(config)
        distributed.require_same_run(config.to_json(sort_keys=True) + self.task.vocab.to_json()
                                     + str(self.task.tokens_per_step)
                                     + str(self.task.fingerprint))
        memory.require_fits(self.task.memory_parts(self.layout), "training this config")
        if config.sample.max_new_tokens and config.data.task != "pairs":  # pairs: targets
            memory.require_fits(memory.sampling_bytes(
                config, self.task.vocab_size, 1, config.sample.max_new_tokens,
                "lower --config.sample.max_new_tokens (0: no sample)"),
                                "the sample at each evaluation (sample.max_new_tokens)")
        self.checkpoints = Checkpoints(workdir, keep=t.keep_checkpoints,
                                       keep_best=t.keep_best_checkpoint)
        try:
            kill_points.maybe_kill("build", 0)  # with the checkpoints folder made, none saved
            self._build()
        except BaseException:
            self.checkpoints.close()
            raise

    def _build(self) -> None:
        t = self.config.train
        resume_step = self.checkpoints.latest_step()
        if resume_step is not None:
            resume.check_config(self.workdir, self.config, _log, resume_step)
            stored = run_files.load_vocab(self.workdir)  # a resumed run keeps its vocabulary
            if stored is not None:
                self.task = self.task.with_vocab(stored)
        elif self.is_main:
            resume.starting_over(self.workdir)
        self.model = self.task.build_model()
        self.optimizer = make_optimizer(t)
        self.learning_rates = reported_rates(t)
        self.data = replicate(self.task.device_data())  # what the train steps gather from
        self.rows = shard(self.layout.row_ids())  # each example's place in the global batch
        self.seed_data = seed_key_data(t.seed)  # the dropout keys' root, an argument
        self.eval_data = self.task.eval_data(self.layout)
        self.steps_per_call = min(t.steps_per_call, t.num_steps)
        # The train and eval steps compile on two other threads while this one builds the
        # state (itself a jitted init, or a restore): on a 2-core laptop the CPU GPT's steps
        # are ready about a second sooner than one by one.
        inputs = self.task.example_inputs()
        shapes = abstract_state(self.model, self.optimizer, inputs)
        replicated = replicated_shapes(shapes)
        start = time.perf_counter()
        pool = ThreadPoolExecutor(2, thread_name_prefix="compile")
        try:
            chunk = make_train_chunk(self.model, self.optimizer, self.task)
            # A finished run only evaluates: it need not wait for its train step to compile.
            finished = resume_step is not None and resume_step >= t.num_steps
            train_chunk = (lambda: chunk) if finished else compile_ahead(
                pool, chunk, replicated, self.data, self._chunk_inputs(0, 0), 0,
                self._stop_request(None, NO_WISH), self.rows, self.seed_data,
                compiler_options=compiler_options(t.cpu_library_products))
            evaluate = compile_ahead(pool, self.task.evaluator(self.model), replicated.params,
                                     self.eval_data)
            if resume_step is None:
                state = init_state(self.model, self.optimizer, t.seed, inputs)
            else:
                resume_step, state = self._restore(shapes)
            self.train_chunk, self.evaluate_step = train_chunk(), evaluate()
        finally:  # a signal or an error need not wait for a compilation of seconds to end
            pool.shutdown(wait=False, cancel_futures=True)
        self.build_seconds = time.perf_counter() - start
        self._require_same_state(resume_step, state)
        self.num_params = count_params(state.params)
        best = self.checkpoints.best() if t.keep_best_checkpoint else None
        self.best_val_loss = math.inf if best is None else best[1]  # of the checkpoints kept
        self._saved_step = resume_step  # the step whose checkpoint exists already
        self._last_grad_norm = math.nan
        self.state = replicate(state)
        if self.is_main:
            run_files.save_config(self.workdir, self.config)
            run_files.save_vocab(self.workdir, self.task.vocab)
            if resume_step is not None:  # here, once nothing can refuse the run any more
                resume.check_data(self.workdir, self.task.fingerprint)
            resume.record_data(self.workdir, self.task.fingerprint, resume_step)
        self.reporter = Reporter(self.workdir, self.config, self.is_main, self.step)

    @staticmethod
    def _require_same_state(step: int | None, state: TrainState) -> None:
        """Processes that restored other checkpoints (workdirs that are not one shared folder,
        or a file changed between their reads) would average the gradients of other models."""
        distributed.require_same(
            "state", lambda: f"{step} {distributed.tree_digest(state.params)}",
            lambda p, theirs, ours: (
                f"process {p} starts from other parameters than process 0 (resumed from step "
                f"{theirs.split()[0]} against {ours.split()[0]}; None: a fresh start): every "
                f"process must read the same checkpoints"))

    def _restore(self, shapes):
        try:
            step, state = self.checkpoints.restore_newest_good(shapes, quarantine=self.is_main)
        except NoneRestores as e:
            raise UserError(f"{e}. Run the same command again to start from step 0 (the "
                            f"metrics so far are kept)") from None
        self.checkpoints.list_again()
        _log(f"resumed from the checkpoint at step {step}")
        return step, state

    @property
    def step(self) -> int:
        return int(unreplicate(self.state.step))

    def evaluate(self) -> dict[str, float]:
        """The task's scores on its fixed eval batches (losses of both splits, ...), dropout
        off."""
        scores = self.evaluate_step(self.state.params, self.eval_data)
        return {name: float(unreplicate(value)) for name, value in scores.items()}

    def save(self, val_loss: float | None = None) -> None:
        step = self.step
        if step == self._saved_step:  # saved already: a stop at a step just saved
            return
        self.checkpoints.save(step, unreplicate(self.state), val_loss)
        self._saved_step = step
        if val_loss is not None:
            self.best_val_loss = min(self.best_val_loss, val_loss)
        kill_points.maybe_kill("save", step)

    def sample(self, max_new_tokens: int) -> str:
        """What the model writes now (the task's sample)."""
        return self.task.sample(self.model, unreplicate(self.state.params), max_new_tokens)

    def summary(self) -> str:
        """Parameters per top-level module and in total, and how the batch is laid out."""
        t, m = self.config.train, self.config.model
        params = unreplicate(self.state.params)
        width = max(len(name) for name in params)
        lines = [f"model {m.name}: {self.num_params:,} parameters"]
        lines += [f"  {name:<{width}}  {count_params(tree):>12,}" for name, tree in params.items()]
        lines.append(f"{jax.process_count()} process(es) × {jax.local_device_count()} "
                     f"{jax.devices()[0].platform} device(s) | batch {t.batch_size} "
                     f"({self.task.tokens_per_step:,} tokens) | steps {self.step} → "
                     f"{t.num_steps}")
        lines.append(f"state and compiled steps ready in {self.build_seconds:.1f} s")
        lines += [f"warning: {doubt}" for doubt in doubts(self.config)]
        return "\n".join(lines)

    def run(self) -> dict:
        """Trains from the current step to train.num_steps; returns the last metrics record."""
        t = self.config.train
        step = self.step
        self.reporter.progress.write(self.summary())
        if step > t.num_steps:
            self.reporter.progress.write(
                f"the run is at step {step}, past train.num_steps = {t.num_steps}: nothing to "
                f"train (a larger --config.train.num_steps trains on from step {step})")
        if step >= t.num_steps:
            try:  # a stop during the last evaluation saved the step, not its figures
                lost = self._evaluation_lost(step) if step == t.num_steps else False
                record = self._record(step, math.nan, write=lost)
                if lost:
                    self._score_resumed_checkpoint(step, record)
                if lost or not os.path.lexists(self.workdir / run_files.LOSS_PLOT) and \
                        read_metrics(self.workdir):  # (a run trained with train.loss_plot off)
                    self.reporter.finish()
                return record
            finally:
                self.reporter.progress.close()
        try:  # nothing to save before the first step: a signal here ends the command at once
            record = None
            if step == 0:
                record = self._record(step, math.nan)
            elif self._evaluation_lost(step):
                record = self._record(step, math.nan)
                self._score_resumed_checkpoint(step, record)
        except BaseException:
            self.reporter.progress.close()
            raise
        # From here to the end a signal asks for a checkpoint at the next step boundary; once
        # the last step is done, it lets the final save and the plot finish, then says so.
        with StopRequest(self.reporter.progress.write) as stop:
            try:
                record = self._loop(step, stop) or record
            finally:
                self.reporter.progress.close()
            try:
                self.checkpoints.wait()
                self.reporter.finish()  # process 0's plot: it may fail there alone
            finally:  # every process reaches the agreement, or none waits on it in vain
                signum = self._agreed(stop.signum or 0)
        if signum:
            word, code = StopRequest.describe(signum)
            raise Stopped(f"{word} after the last step, {t.num_steps}: checkpoint saved in "
                          f"{self.checkpoints.directory}", code)
        return record

    def _loop(self, step: int, stop: StopRequest) -> dict | None:
        t = self.config.train
        clock = ChunkClock(self.task.tokens_per_step)
        record, pending, first_call = None, None, True
        loop_start = time.perf_counter()
        agreed_stop = 0  # the signal any process received, as all processes learn it
        alone = jax.process_count() == 1  # no other process to agree with
        # The first call compiles and the second times a step: one step each, so that a stop
        # request is served within a step or two even where a step takes many seconds.
        steps_per_call = 1
        # Then as many steps a call as keep it under train.chunk_seconds on this process
        # (its wish); processes must chunk alike, so with several each sends its wish with a
        # chunk's stop request and all take the fewest, learnt from the same chunk.
        wish, agreed_steps = NO_WISH, NO_WISH

        def flush(timed: bool = True):
            nonlocal pending, agreed_stop, agreed_steps
            if pending is not None:
                signum, steps = self._check(*pending, clock if timed else None)
                agreed_stop = max(agreed_stop, signum)
                agreed_steps = steps if steps != NO_WISH else agreed_steps
                pending = None

        def unpause():
            """After the first call or an evaluation and checkpoint: what they took counts
            toward no step, in tokens/s or in the bar's rate and ETA."""
            clock.restart()
            self.reporter.progress.unpause()

        while step < t.num_steps:
            n = min(steps_per_call, self._steps_to_next_event(step))
            self.state, metrics, stop_request = self.train_chunk(
                self.state, self.data, self._chunk_inputs(step, n), n,
                self._stop_request(stop.signum, wish), self.rows, self.seed_data)
            # The losses start for the host now: on a GPU, a copy asked for only after the
            # next chunk is queued waited for that chunk too (a chunk before an evaluation then
            # seemed to take no time: 10^8 tokens/s on an H200).
            metrics.copy_to_host_async()
            stop_request.copy_to_host_async()
            for s in range(step + 1, step + n + 1):
                kill_points.maybe_kill("step", s)
            flush()  # the previous chunk's losses: the device is busy with this one meanwhile
            pending = (step, n, metrics, stop_request)
            step += n
            self.checkpoints.check()
            if first_call:  # its time is the start-up's (compiled on its first call)
                first_call = False
                flush(timed=False)
                self.reporter.progress.write(
                    f"the first {n} step(s) took {time.perf_counter() - loop_start:.1f} s")
                unpause()
            elif clock.steps:
                wish = self._steps_per_call(clock.seconds / clock.steps)
                steps_per_call = wish if alone else (
                    agreed_steps if agreed_steps != NO_WISH else steps_per_call)
            checkpoint = step % t.checkpoint_every == 0 or step == t.num_steps
            evaluate = step % t.eval_interval == 0 or step == t.num_steps
            if checkpoint or evaluate:
                flush()  # never save a state whose loss and gradients were not checked
                # finite (parameters an update made non-finite show at the next step's loss:
                # _non_finite sets their checkpoint aside)
                tokens_per_s = clock.rate()
                if evaluate:
                    record = self._record(step, tokens_per_s)
                    checkpoint = checkpoint or self._new_best(record)
                if checkpoint:  # with its val loss, which decides the best checkpoint kept
                    self.save(record.get("val_loss") if evaluate else None)
                unpause()
            if self.reporter.progress.output_closed:  # nobody follows the run: save, stop
                stop.request(OUTPUT_CLOSED)
            if (agreed_stop or (alone and stop.requested)) and step < t.num_steps:
                flush()
                self._stop(step, agreed_stop or stop.signum)
        flush()
        return record

    def _evaluation_lost(self, step: int) -> bool:
        """Whether the run resumes at an evaluation step whose record is not in the metrics:
        a stop during that evaluation saved the step, not its figures. Process 0 reads the
        metrics; every process learns its answer, since all must evaluate together."""
        t = self.config.train
        due = step % t.eval_interval == 0 or step == t.num_steps
        lost = due and self.is_main and all(r["step"] != step for r in read_metrics(self.workdir))
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            lost = bool(multihost_utils.broadcast_one_to_all(np.int32(lost)))
        return lost

    @staticmethod
    def _agreed(signum: int) -> int:
        """The stop signal any process received after the last step, learnt by every process:
        all then end alike, together, instead of one leaving while another still saves,
        evaluates or samples (which its runtime would report as a lost peer)."""
        if jax.process_count() == 1:
            return signum
        from jax.experimental import multihost_utils

        return int(np.max(multihost_utils.process_allgather(np.int32(signum))))

    def _steps_per_call(self, step_seconds: float) -> int:
        """Steps per call that keep a call under train.chunk_seconds, so that a stop request (a
        scheduler's SIGTERM comes with a grace period of about 30 s) is served in seconds even
        when one step takes many."""
        t = self.config.train
        return max(1, min(t.steps_per_call, int(t.chunk_seconds / step_seconds)))

    def _score_resumed_checkpoint(self, step: int, record: dict) -> None:
        """After a stop during the evaluation of `step`, whose checkpoint was saved without
        its val loss: the evaluation done again gives it one, kept as the best if it is."""
        val_loss = record.get("val_loss")
        if not (self.config.train.keep_best_checkpoint and val_loss is not None
                and math.isfinite(val_loss) and self.checkpoints.latest_step() == step):
            return
        self.checkpoints.score(step, val_loss, write=self.is_main)
        self.best_val_loss = min(self.best_val_loss, val_loss)

    def _new_best(self, record: dict) -> bool:
        """Whether this evaluation's val loss is the lowest so far: with keep_best_checkpoint,
        its step is saved even between checkpoint_every steps, as nanoGPT saves its best."""
        val_loss = record.get("val_loss")
        return (self.config.train.keep_best_checkpoint and val_loss is not None
                and val_loss < self.best_val_loss)

    def _stop(self, step: int, signum: int) -> None:
        """Saves the step every process has reached and leaves with the signal's exit status."""
        self.save()  # unless saved already
        self.checkpoints.wait()
        raise self._stopped(step, signum)

    def _stopped(self, step: int, signum: int) -> Stopped:
        word, code = StopRequest.describe(signum)
        return Stopped(f"{word} at step {step}: checkpoint saved in {self.checkpoints.directory};"
                       f" run the same command to resume", code)

    def _save_then_end(self, step: int, signum: int) -> None:
        """A signal during an evaluation or a sample, acted on by stop.py's watch thread while
        the main thread waits in that call: the state it reads is the step's, checked finite
        and not being updated, so this thread saves it and ends the command as `_stop` would."""
        stopped = self._stopped(step, signum)
        try:
            self.save()
            self.checkpoints.wait()
            self.reporter.close()
        except Exception as e:  # disk full, ...: the checkpoints before stay as they were
            end_command(f"error: {str(stopped).split(':')[0]}, but its checkpoint could not be "
                        f"saved: {e}", EXIT_USER_ERROR)
        end_command(str(stopped), stopped.exit_code)

    def _without_waiting_on_a_signal(self, step: int):
        """Around a long call inside training: a first signal need not wait for its end (one
        process only: several must agree on the step they save, which the train step does)."""
        if jax.process_count() > 1:
            return contextlib.nullcontext()
        return acting_during(lambda signum: self._save_then_end(step, signum))

    def _steps_to_next_event(self, step: int) -> int:
        """Steps until the next evaluation, checkpoint or the end: a chunk never crosses one."""
        t = self.config.train
        return min(t.num_steps, *((step // every + 1) * every
                                  for every in (t.eval_interval, t.checkpoint_every))) - step

    def _chunk_inputs(self, step: int, n: int):
        """What steps step .. step+n-1 (padded to steps_per_call) draw their batches from."""
        return self.task.chunk_inputs(self.layout, step, n, self.steps_per_call)

    @staticmethod
    def _stop_request(signum: int | None, wish: int) -> jax.Array:
        """This process's (stop signal, -steps per call it wishes), one row per local device,
        for the train chunk to share with every other process: their largest is the signal
        any process received and the fewest steps any wishes."""
        return shard(np.tile(np.array([signum or 0, -wish], np.int32),
                             (jax.local_device_count(), 1)))

    def _check(self, first: int, n: int, metrics_Kx2, stop_request,
               clock: ChunkClock | None) -> tuple[int, int]:
        """Fetches the losses of steps first+1 .. first+n; reports them, and stops on a
        non-finite value (of a loss, or of a gradient, which would have made the params NaN).
        Returns what the processes agreed on in that chunk: the stop signal (0: none) and the
        steps per call (NO_WISH: no process timed a chunk yet). Without a `clock` (the first
        call's chunk, which the start-up took), no tokens/s."""
        losses = unreplicate(metrics_Kx2)[:n].tolist()
        tokens_per_s = math.nan
        if clock is not None:
            clock.chunk_done(n)
            tokens_per_s = clock.rate()  # since the last pause: one late chunk cannot skew it
        for k, (loss, grad_norm) in enumerate(losses):
            self._check_step(first + k + 1, loss, grad_norm, tokens_per_s)
        signum, minus_steps = unreplicate(stop_request).tolist()
        return signum, -minus_steps

    def _check_step(self, step: int, loss: float, grad_norm: float, tokens_per_s: float) -> None:
        self._last_grad_norm = grad_norm
        if not math.isfinite(loss + grad_norm):
            raise self._non_finite(
                step, f"non-finite training loss ({loss}) or gradient norm ({grad_norm})",
                step - 1)
        self.reporter.step(step, loss, grad_norm, self._rates(step), tokens_per_s)

    def _rates(self, step: int) -> dict[str, float | None]:
        """The learning rates of the update that ended at `step`, by name ("lr", "muon_lr");
        none at step 0, which no update ended (as its grad_norm)."""
        return {name: rates.after(step) if step else None
                for name, rates in self.learning_rates.items()}

    def _non_finite(self, step: int, what: str, params_step: int) -> UserError:
        """The refusal of `what`, a non-finite value at `step`, which the parameters of
        `params_step` gave: step - 1's for a training step's loss and gradients (on a batch
        fixed by the seed), the step's own for its evaluation. Resumed, their checkpoint fails
        again, whatever the learning rate, so process 0 sets it aside (not deleted); every
        process names the same last good one, and leaves as one that agreed to (all see the
        same values), so that none is stopped by another's word while it sets it aside."""
        if step == 0:  # no update yet: the initial parameters, which the model's settings give
            distributed.leaving()
            return UserError(f"{what} of the initial parameters (step 0): the model's settings "
                             f"give them, not training; check model.init, model.compute_dtype "
                             f"and its sizes")
        self.checkpoints.wait()
        # every process done with the save before process 0 moves it: one still finishing it
        # found its folder gone, and refused with "cannot save" instead of this
        distributed.require_same(f"saves done at step {step}", lambda: "done",
                                 lambda p, *_: f"process {p} did not finish its save")
        steps = self.checkpoints.steps()
        moved = ""
        if params_step in steps:
            aside = self.checkpoints.directory.with_name(run_files.DAMAGED)
            if self.is_main:
                try:
                    aside = self.checkpoints.set_aside(params_step)
                except (UserError, OSError) as e:
                    moved = (f"; the checkpoint of step {params_step}, whose parameters gave "
                             f"it, could not be set aside ({e}), and resuming from it fails "
                             f"again")
            moved = moved or (f"; the checkpoint of step {params_step}, whose parameters gave "
                              f"it, was moved to {aside}")
        good = [s for s in steps if s < params_step]
        kept = f"the last good checkpoint (step {good[-1]}) is kept" if good \
            else "no good checkpoint is left (the next run starts over)"
        distributed.leaving()
        return UserError(f"{what} at step {step}: stopped{moved}; {kept}. Try a lower "
                         f"--config.train.learning_rate" + (
                             " or --config.train.muon_learning_rate"
                             if self.config.train.optimizer == "muon" else ""))

    def _record(self, step: int, tokens_per_s: float, write: bool = True) -> dict:
        """Evaluates; logs, writes the metrics record and a sample (process 0)."""
        sample = None
        with self._without_waiting_on_a_signal(step):
            scores = self.evaluate()
            losses = {name: value for name, value in scores.items() if name.endswith("loss")}
            if not all(map(math.isfinite, losses.values())):  # the last step's update has
                # no next step whose loss would show it: its checkpoint is not to be saved
                raise self._non_finite(step, "non-finite evaluation losses (" + ", ".join(
                    f"{name} {value}" for name, value in losses.items()) + ")", step)
            if self.is_main and self.config.sample.max_new_tokens > 0:
                sample = self.sample(self.config.sample.max_new_tokens)
        record = {"step": step, **scores, "tokens_per_s": tokens_per_s, **self._rates(step),
                  "grad_norm": self._last_grad_norm}
        self.reporter.record(record, sample, write)
        return record

    def best_kept(self) -> tuple[int, float] | None:
        """(step, val loss) of the best checkpoint, where it is not the newest one."""
        if not self.config.train.keep_best_checkpoint:
            return None
        best = self.checkpoints.best()
        return best if best is not None and best[0] != self.checkpoints.latest_step() else None

    def close(self) -> None:
        self.checkpoints.close()
        if hasattr(self, "reporter"):
            self.reporter.close()

    @property
    def last_sample(self) -> str | None:
        return self.reporter.last_sample if hasattr(self, "reporter") else None


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict:
    """Trains `config` in `workdir` (resuming from its latest checkpoint), prints a sample at the
    end, and returns the final metrics record."""
    created = not user_path(workdir).exists()
    main = jax.process_index() == 0
    workdir = run_files.prepare(workdir, create=main)  # the others' must be process 0's
    lock = run_files.WorkdirLock(workdir, created) if main else contextlib.nullcontext()
    with lock, distributed.cleaned_up_on_forced_exit(lambda: lock.__exit__(None, None, None)):
        distributed.require_shared_workdir(workdir, run_files.LOCK)
        trainer = Trainer(config, workdir)
        aborted = False
        try:
            record = trainer.run()
            best = trainer.best_kept()
        except KeyboardInterrupt:  # a second signal, or Terminated: abort as asked, even
            aborted = True         # where it cut the stop's own save short (the checkpoint
            raise                  # before stays; the save's failure is not news)
        finally:
            with contextlib.suppress(UserError) if aborted else contextlib.nullcontext():
                trainer.close()
        if trainer.last_sample is not None:
            _log("sample:\n" + trainer.last_sample)
        since = resume.data_since(workdir)  # where the data changed: no loss compares across
        if best is not None and 0 < since and best[0] <= since:
            _log(f"the best checkpoint kept, at step {best[0]}, was scored on the data this run "
                 f"trained on until step {since}, where its data changed: its val loss "
                 f"({best[1]:.4f}) does not compare with the later ones'")
        elif best is not None:
            evaluated = [(r["val_loss"], r["step"]) for r in read_metrics(workdir)
                         if r.get("val_loss") is not None and (r["step"] > since or not since)
                         ] if main else []
            lowest = min(evaluated, default=(best[1], best[0]))
            if lowest[0] < best[1]:  # at a step without a checkpoint (step 0, or one that a
                # stop during its evaluation saved without its val loss, since rotated away)
                _log(f"the lowest val loss of the checkpoints kept, {best[1]:.4f}, was at step "
                     f"{best[0]} (python -m gpt_jax.sample --workdir={workdir} --best); the "
                     f"run's lowest, {lowest[0]:.4f} at step {lowest[1]}, has no checkpoint")
            else:
                _log(f"the lowest val loss, {best[1]:.4f}, was at step {best[0]}: its checkpoint "
                     f"is kept (python -m gpt_jax.sample --workdir={workdir} --best)")
        return record
