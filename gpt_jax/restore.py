"""Everything needed to use a trained run, read from its workdir alone."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

import flax.linen as nn
import ml_collections

from gpt_jax import run_files
from gpt_jax.checkpoint import Checkpoints
from gpt_jax.config import validate
from gpt_jax.errors import UserError
from gpt_jax.metrics import read_metrics
from gpt_jax.optim import make_optimizer
from gpt_jax.pairs import PairVocab
from gpt_jax.resume import PARAMETER_NEUTRAL, data_since
from gpt_jax.state import TrainState, abstract_state
from gpt_jax.task import task_model
from gpt_jax.user_files import not_there, user_path


@dataclasses.dataclass
class Run:
    config: ml_collections.ConfigDict
    tokenizer: object  # CharTokenizer, BPETokenizer or PairVocab
    model: nn.Module
    state: TrainState  # host arrays
    step: int

    @property
    def params(self) -> Any:
        return self.state.params


def _say_if_the_lowest_is_gone(evaluated: dict[int, float], step: int) -> None:
    """--best restores the best checkpoint kept: where the lowest val loss of the metrics has
    none (step 0 is never saved; train.keep_checkpoints may have deleted it), say so."""
    lowest = min(evaluated, key=evaluated.get, default=None)  # (no metrics: nothing to say)
    if step in evaluated and evaluated[lowest] < evaluated[step]:
        print(f"warning: the lowest val loss, {evaluated[lowest]:.4f} at step {lowest}, has no "
              f"checkpoint{' (step 0 is not saved)' if lowest == 0 else ''}; --best restores "
              f"step {step} (val loss {evaluated[step]:.4f}), the best of those kept",
              file=sys.stderr)


def load_run(workdir: str | Path, step: int | None = None, best: bool = False) -> Run:
    """Restores config and vocab (JSON) and the checkpoint at `step` (default: the latest;
    with `best`, the one saved with the lowest val loss), without writing anything to the
    workdir."""
    workdir = user_path(workdir).absolute()
    if workdir.exists() and not workdir.is_dir():
        raise UserError(f"workdir {workdir} is {run_files.kind_of(workdir)}, not a run folder")
    if not workdir.is_dir():
        raise not_there("workdir", workdir)
    config, tokenizer = run_files.load_config(workdir), run_files.load_vocab(workdir)
    if config is not None:
        try:
            validate(config)
        except UserError as e:
            raise UserError(f"{workdir / run_files.CONFIG} is damaged: {e}") from None
    if config is None or tokenizer is None:
        if (workdir / run_files.LOCK).is_file():  # a trainer writes both once its model is built
            raise UserError(f"workdir {workdir} has no checkpoint yet: a run is starting there "
                            f"({run_files.LOCK} is there, {run_files.CONFIG} not yet); sample "
                            f"it once it has saved its first checkpoint")
        raise UserError(f"{workdir} is not a training run: {run_files.CONFIG} or "
                        f"{run_files.VOCAB} is missing")
    if (config.data.task == "pairs") != isinstance(tokenizer, PairVocab):
        held = ("the vocabulary of source → target pairs" if isinstance(tokenizer, PairVocab)
                else f"a text tokenizer ({tokenizer.kind})")
        raise UserError(f"{workdir / run_files.VOCAB} holds {held}, but {run_files.CONFIG} "
                        f"trains data.task={config.data.task}: the two files are of different "
                        f"runs")
    kept = workdir / run_files.CHECKPOINTS
    if os.path.lexists(kept) and not kept.is_dir():
        raise UserError(f"{kept} is {run_files.kind_of(kept)}, not the run's folder of "
                        f"checkpoints: move it away")
    if not kept.is_dir():
        raise UserError(f"workdir {workdir} has no checkpoints yet")
    checkpoints = Checkpoints(workdir, read_only=True)
    try:
        steps = checkpoints.steps()
        if not steps:
            raise UserError(f"workdir {workdir} has no checkpoints yet")
        if best:
            evaluated = {r["step"]: r["val_loss"] for r in read_metrics(workdir)
                         if r.get("val_loss") is not None}
            step = checkpoints.best_step(evaluated)
            if step is None:
                raise UserError(f"no checkpoint in {workdir} was saved with a val loss (the "
                                f"ones saved at an evaluation step are)")
            since = data_since(workdir)  # where the data changed: no loss compares across
            if 0 < since and step <= since:
                print(f"warning: the best checkpoint, at step {step}, was scored on the data "
                      f"this run trained on until step {since}, where its data changed: its "
                      f"val loss does not compare with the later ones' (--step=N chooses "
                      f"another)", file=sys.stderr)
            else:
                _say_if_the_lowest_is_gone(
                    {s: v for s, v in evaluated.items() if s > since or not since}, step)
        if step is not None and step not in steps:
            raise UserError(f"no checkpoint at step {step} in {workdir}; "
                            f"available: {', '.join(map(str, steps))}")
        model, inputs = task_model(config, tokenizer.vocab_size)
        target = abstract_state(model, make_optimizer(config.train), inputs)
        try:
            step, state = checkpoints.restore_newest_good(target, step, best=best)
        except UserError as e:
            missing = [f for f in run_files.missing_fields(workdir, "model")
                       if f.split(" ")[0].split(".")[1] not in PARAMETER_NEUTRAL]
            if "does not match the model" in str(e) and missing:
                raise UserError(f"{e}; {workdir / run_files.CONFIG} lacks {', '.join(missing)}"
                                f" (the default{'s' * (len(missing) > 1)} taken): was it edited,"
                                f" or saved before these fields existed?") from None
            raise
    finally:
        checkpoints.close()
    return Run(config, tokenizer, model, state, step)
