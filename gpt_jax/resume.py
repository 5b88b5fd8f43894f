"""The resume policy: what a run started again in a workdir that already holds one may change.

The same command resumes from the newest checkpoint that restores. A different model is
refused; settings that do not change the parameters (how attention is computed, the matmul
dtype) and training settings (steps, learning rate, ...) may change, and each change is logged.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

import ml_collections

from gpt_jax import run_files
from gpt_jax.dataset import Corpus
from gpt_jax.errors import UserError
from gpt_jax.metrics import is_record, keep_aside, read_metrics
from gpt_jax.run_files import DAMAGED
from gpt_jax.tokenizer import load_tokenizer

# Model fields that change how the same parameters are computed with, not the parameters;
# dropout too, a regularization of the training to come.
PARAMETER_NEUTRAL = ("query_chunk", "compute_dtype", "fused_dropout", "fused_decode", "dropout")
# Model fields that only say how a new run's parameters start.
INITIALIZATION = ("init", "zero_init_proj")
# The MLP's fields, which a Transformer never reads.
NOT_READ = {"gpt": ("context", "mlp_hidden"), "encoder_decoder": ("context", "mlp_hidden")}


def check_config(workdir: Path, config: ml_collections.ConfigDict,
                 log: Callable[[str], None], step: int | None = None) -> None:
    """Refuses to resume a different model; logs every other setting that changed, and the
    jump of the learning rate at `step` that a changed schedule makes (a cosine stretched
    over more steps climbs back up)."""
    stored = run_files.load_config(workdir)
    if stored is None:
        return
    changes = run_files.config_differences(stored, config, "model")
    renamed = [c for c in changes if c.startswith("model.name:")]
    if renamed:  # before any field that the two models share or not: the model itself
        raise UserError(f"workdir {workdir} holds a checkpoint of a different model "
                        f"({renamed[0]}); use a new --workdir or the original config")
    if stored.train.optimizer != config.train.optimizer:
        raise UserError(f"workdir {workdir} was trained with train.optimizer="
                        f"{stored.train.optimizer}, whose state its checkpoints hold: resume "
                        f"with it, or use a new --workdir")
    clipped = stored.train.grad_clip > 0
    if clipped != (config.train.grad_clip > 0):
        raise UserError(f"workdir {workdir} was trained with train.grad_clip="
                        f"{stored.train.grad_clip}, clipping {'on' if clipped else 'off'}, whose "
                        f"optimizer state its checkpoints hold: resume with clipping "
                        f"{'on (any train.grad_clip > 0)' if clipped else 'off (0)'}, or use a "
                        f"new --workdir")
    def field(change: str) -> str:
        return change.split(":")[0].split(".")[1]

    started = [c for c in changes if field(c) in INITIALIZATION]
    if started:
        raise UserError(f"workdir {workdir}: {started[0]} only decides how a new run's "
                        f"parameters start, and this run's come from its checkpoint: resume "
                        f"with the original setting, or use a new --workdir")
    neutral = PARAMETER_NEUTRAL + NOT_READ.get(stored.model.name, ())
    refused = [c for c in changes if field(c) not in neutral]
    if stored.model.name == "encoder_decoder":  # a table of source positions, one per row
        refused += [c for c in run_files.config_differences(stored, config, "data")
                    if c.startswith("data.max_source_len:")]
    if refused:
        why = refused[0]
        lengths = [c for c in run_files.config_differences(stored, config, "data")
                   if c.startswith(("data.max_source_len:", "data.max_target_len:"))]
        if why.startswith("model.block_size:") and lengths:  # seq2seq.py derives it from them
            why = f"{lengths[0]}, which sets {why}"
        raise UserError(f"workdir {workdir} holds a checkpoint of a different model "
                        f"({why}); use a new --workdir or the original config")
    for section in ("train", "data", "sample"):
        changes += run_files.config_differences(stored, config, section)
    for change in changes:
        log(f"resuming with a changed setting: {change}")
    if step is not None:
        from gpt_jax.optim import learning_rate_schedule

        before, now = (float(learning_rate_schedule(c.train)(step)) for c in (stored, config))
        if not math.isclose(before, now, rel_tol=1e-6):
            log(f"the learning rate at step {step} is now {now:.3g}, where the run's schedule "
                f"until now had {before:.3g}: the new settings' schedule applies from here")


def fingerprint(data) -> str:
    """sha256 of `data` (a text, or JSON: pairs, a prepared dataset's file hashes)."""
    text = data if isinstance(data, str) else json.dumps(data)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def other_data(workdir: Path, data_fingerprint: str | None) -> bool:
    """Whether the data is known to differ from what the run trained on (WORKDIR/data.json);
    False where either fingerprint is missing or damaged (nothing to compare)."""
    path = workdir / run_files.DATA
    try:
        stored = json.loads(path.read_text(encoding="utf-8")).get("sha256") \
            if run_files.file_exists(path) else None
    except (OSError, ValueError, AttributeError):
        stored = None  # damaged: nothing to compare with; recorded afresh (record_data)
    return bool(stored and data_fingerprint and stored != data_fingerprint)


def check_data(workdir: Path, data_fingerprint: str | None) -> None:
    """A run resumed on other data than it trained on (a file edited, a dataset prepared
    again from other text) is told so: its val loss is measured on another split from here
    on. Changed data is not refused, as a changed setting is not; it was silent."""
    if other_data(workdir, data_fingerprint):
        print(f"warning: resuming on other data than this run trained on until now (its "
              f"sha256 differs from the one in {workdir / run_files.DATA}): the losses from "
              f"here on are measured on it, and do not continue the curve before",
              file=sys.stderr)


def record_data(workdir: Path, data_fingerprint: str | None, step: int | None) -> None:
    """WORKDIR/data.json: the fingerprint of the data the run trains on from now, and the step
    from which it does (`step`, the resumed one, where the data changed there): the val
    losses of earlier steps were measured on other data."""
    if data_fingerprint:  # (resumed before the recorded change, at a checkpoint of the data
        # before it: the change is at the step resumed)
        since = min(data_since(workdir), step) if step is not None and not other_data(
            workdir, data_fingerprint) else step or 0
        run_files.write_atomic(workdir / run_files.DATA,
                               json.dumps({"sha256": data_fingerprint, "since_step": since}))


def data_since(workdir: Path) -> int:
    """The step from which the run has trained on its present data (0: from the start, or
    not recorded)."""
    path = workdir / run_files.DATA
    try:
        since = json.loads(path.read_text(encoding="utf-8")).get("since_step", 0) \
            if run_files.file_exists(path) else 0
    except (OSError, ValueError, AttributeError):
        return 0
    return since if isinstance(since, int) and not isinstance(since, bool) and since > 0 else 0


def resumed_corpus(workdir: Path, corpus: Corpus, text: str) -> Corpus:
    """The corpus tokenized with the vocabulary the run was trained with, which a changed data
    file must fit (its ids are the rows of the embedding table)."""
    stored = run_files.load_vocab(workdir)
    if stored is None or stored.chars == corpus.tokenizer.chars:
        return corpus
    try:
        return Corpus.from_text(text, stored)
    except UserError as e:
        raise UserError(f"the data does not fit the vocabulary this run was trained "
                        f"with: {e}") from None


def starting_over(workdir: Path) -> None:
    """Called when a run starts from step 0 in a workdir that holds metrics of a run past step
    0 (its checkpoints damaged and moved aside, deleted, or never saved before a crash): says
    so loudly and keeps those metrics, which the new run would otherwise overwrite."""
    _require_no_foreign_files(workdir)
    records = read_metrics(workdir)
    if not any(r["step"] > 0 for r in records):
        return
    kept = keep_aside(workdir / run_files.METRICS, "before_restart")
    why = (f"no checkpoint of {workdir} restores (the damaged ones are in {workdir / DAMAGED})"
           if (workdir / DAMAGED).is_dir() else f"{workdir} holds no checkpoint to resume")
    print(f"warning: {why}; training starts again from step 0. The metrics up to step "
          f"{records[-1]['step']} are kept in {kept}", file=sys.stderr)


def _require_no_foreign_files(workdir: Path) -> None:
    """A file of a run's name that no run wrote (`--workdir=.` in a project that has its own
    config.json) is refused, not overwritten by the run starting there."""
    def is_json_of(path: Path, fields: tuple[str, ...]) -> bool:
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return False
        return isinstance(value, dict) and all(field in value for field in fields)

    def is_vocabulary(path: Path) -> bool:
        try:
            load_tokenizer(path)
        except UserError:
            return False
        return True

    def holds_records(path: Path) -> bool:  # a line cut short by a crash is not foreign
        def record(line: str):
            try:
                return json.loads(line)
            except (ValueError, RecursionError):
                return None
        text = path.read_bytes().decode("utf-8", errors="replace")
        return not text.strip() or any(is_record(record(line)) for line in text.splitlines())

    for name, is_ours in ((run_files.CONFIG, lambda p: is_json_of(p, ("model", "train"))),
                          (run_files.VOCAB, is_vocabulary),
                          (run_files.DATA, lambda p: is_json_of(p, ("sha256",))),
                          (run_files.METRICS, holds_records)):
        path = workdir / name
        if run_files.file_exists(path) and not is_ours(path):
            raise UserError(f"{path} is not a file that a run wrote, and a run starting in "
                            f"{workdir} would overwrite it: choose another --workdir, or move "
                            f"{name} away")
    if run_files.file_exists(workdir / run_files.CONFIG):
        return  # a run began here (its config.json is written before anything else)
    drawn = [workdir / run_files.LOSS_PLOT, *sorted(
        (workdir / run_files.SAMPLES).glob("step_*.txt"))]
    for path in drawn:  # what a run draws, not what it reads back: ours only beside a run's
        if os.path.lexists(path):  # config.json
            raise UserError(f"{path} is not a file that a run wrote, and a run starting in "
                            f"{workdir} would overwrite it: choose another --workdir, or move "
                            f"{path.relative_to(workdir)} away")
