"""Checkpoints through orbax, behind one small class: nothing else in gpt_jax imports orbax.

A checkpoint holds host (unreplicated) arrays, so one saved on N devices restores on M.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from gpt_jax.errors import UserError
from gpt_jax.run_files import (
    CHECKPOINTS,
    DAMAGED,
    check_checkpoint_path,
    file_exists,
    write_atomic,
)


def _key_name(key) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def _flat(tree) -> dict[str, tuple[tuple[int, ...], str]]:
    """{'params/block_0/sa/proj/kernel': (shape, dtype)} for every leaf of a pytree."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {"/".join(_key_name(k) for k in path): (tuple(leaf.shape), str(np.dtype(leaf.dtype)))
            for path, leaf in leaves}


def first_mismatch(saved, expected) -> str | None:
    """Describes the first leaf where the saved tree and the expected one differ, or None."""
    saved, expected = _flat(saved), _flat(expected)
    for path, (shape, dtype) in expected.items():
        if path not in saved:
            return f"{path} is missing from the checkpoint"
        if saved[path] != (shape, dtype):
            s_shape, s_dtype = saved[path]
            return (f"{path} is {s_dtype}{list(s_shape)} in the checkpoint, "
                    f"{dtype}{list(shape)} here")
    extra = sorted(set(saved) - set(expected))
    return f"{extra[0]} is in the checkpoint but not in this model" if extra else None


class DamagedCheckpoint(Exception):
    """A checkpoint folder that cannot be read as a checkpoint at all."""


class NoneRestores(UserError):
    """Every checkpoint of a run is damaged: a new run would start from step 0."""


# How gRPC reports a coordination service gone with its process (killed, or its host lost) to
# a save that waits at orbax's barrier, which runs through it.
COORDINATION_LOST = ("UNAVAILABLE:", "Socket closed", "Connection refused",
                     "failed to connect to all addresses")


def _chain(error: BaseException):
    """The error and those under it (causes, contexts, an exception group's), once each."""
    seen, todo = set(), [error]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [e.__cause__, e.__context__, *getattr(e, "exceptions", ())]


def coordination_lost(error: BaseException) -> bool:
    """Whether a multi-process save or restore failed because a process of the run is gone:
    orbax's barriers run through jax's coordination service, in process 0."""
    return jax.process_count() > 1 and any(
        sign in str(e) for e in _chain(error) for sign in COORDINATION_LOST)


def describe_failure(error: BaseException) -> str:
    """The reason a save or restore failed, in a few words: the OS error under orbax's and
    tensorstore's wrappers ('No space left on device', 'Permission denied') when there is one,
    or the process of the run that is gone."""
    for e in _chain(error):
        if isinstance(e, OSError) and e.strerror:
            return e.strerror
        code = re.search(r"os_error_code='(\d+)'", str(e))
        if code:
            return os.strerror(int(code.group(1)))
    if coordination_lost(error):
        return ("another process of this run failed or was stopped (jax's coordination service "
                "lost it)" if jax.process_index() == 0 else
                "process 0 of this run, which holds jax's coordination service, failed or was "
                "stopped")
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:160]}" if text else type(error).__name__


def _val_loss(metrics) -> float:
    return metrics["val_loss"]


class Checkpoints:
    """The step-numbered checkpoints of one run, under WORKDIR/checkpoints: the newest `keep`
    and, with `keep_best`, also the one with the lowest val loss (a small corpus is overfit
    long before the last step: the scaled GPT's best is at step 2,000 of 5,000)."""

    def __init__(self, workdir: str | Path, keep: int = 3, read_only: bool = False,
                 keep_best: bool = True):
        self.directory = Path(workdir).absolute() / CHECKPOINTS  # orbax wants absolute
        check_checkpoint_path(self.directory)  # before a read of existing steps, too
        # best_fn makes orbax store each save's val loss beside it ("metrics") and read them
        # all when it opens the folder, where one garbled file would raise: set aside first.
        tracked = dict(best_fn=_val_loss, best_mode="min")
        if read_only:  # for sampling: touches nothing on disk; best() reads the scores itself
            options = ocp.CheckpointManagerOptions(read_only=True, create=False,
                                                   save_interval_steps=0,
                                                   lightweight_initialize=True)
        else:  # a save killed half-way leaves a temporary folder: clear it away at start
            if self.directory.exists() and not self.directory.is_dir():
                raise UserError(f"{self.directory} is a file, not the folder of this run's "
                                f"checkpoints: move it away")
            self._set_aside_damaged_scores()
            policies = ocp.checkpoint_managers
            kept = [policies.LatestN(n=keep)]
            if keep_best:
                kept.append(policies.BestN(get_metric_fn=_val_loss, reverse=True, n=1,
                                           keep_checkpoints_without_metrics=False))
            options = ocp.CheckpointManagerOptions(
                cleanup_tmp_directories=True, max_to_keep=None,
                preservation_policy=policies.AnyPreservationPolicy(kept), **tracked)
        self._pending: int | None = None  # the step of the save in flight
        self._failed = False
        self._cleanup_failed = False  # an old checkpoint could not be deleted (warned once)
        try:
            self._manager = ocp.CheckpointManager(
                self.directory, options=options, item_handlers=ocp.StandardCheckpointHandler())
        except OSError as e:
            raise UserError(f"cannot open the checkpoints in {self.directory}: "
                            f"{describe_failure(e)}") from None

    def steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def _score_file(self, step: int) -> Path:
        return self.directory / str(step) / "metrics" / "metrics"  # orbax's metrics item

    def _score(self, step: int) -> float | None:
        """The val loss saved with `step`, or None: none saved, or not readable as one."""
        path = self._score_file(step)
        if not file_exists(path):
            return None
        try:
            value = _val_loss(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, KeyError, RecursionError):
            return None
        is_loss = (isinstance(value, (int, float)) and not isinstance(value, bool)
                   and math.isfinite(value) and value >= 0)  # a cross-entropy: a number >= 0
        return float(value) if is_loss else None

    def score(self, step: int, val_loss: float, write: bool = True) -> None:
        """Gives the checkpoint of `step`, saved without a val loss (a stop during its
        evaluation), the val loss that its step's evaluation found after the resume, so that
        it competes for the best kept (orbax keeps no unscored checkpoint as the best).
        `write`: this process writes the file (process 0; the others only read it after)."""
        path = self._score_file(step)
        if write and not file_exists(path):
            path.parent.mkdir(exist_ok=True)
            write_atomic(path, json.dumps({"val_loss": float(val_loss)}))
        _all_processes_reach(f"score {step}")
        self._manager.reload()  # orbax reads each step's metrics once, when it opens

    def _set_aside_damaged_scores(self) -> None:
        """A step's val-loss file that is not one (a damaged disk, a hand edit) goes to
        WORKDIR/checkpoints_damaged/, never deleted: its checkpoint still restores, it only
        stops competing for the best."""
        for step in self._on_disk():
            if self._score_file(step).exists() and self._score(step) is None:
                aside = self._aside(f"the val loss saved with the checkpoint at step {step} is "
                                    f"damaged")
                destination = aside / f"{step}.metrics.{int(time.time())}"
                try:
                    os.replace(self._score_file(step), destination)
                except FileNotFoundError:  # another process of the run moved it first
                    continue
                print(f"warning: the val loss saved with the checkpoint at step {step} is "
                      f"damaged: moved to {destination}", file=sys.stderr)

    def best(self) -> tuple[int, float] | None:
        """(step, val loss) of the checkpoint saved with the lowest val loss, or None when no
        checkpoint was saved with one."""
        scored = [(s, v) for s in self.steps() if (v := self._score(s)) is not None]
        return min(scored, key=lambda item: item[1]) if scored else None

    def best_step(self, evaluated: dict[int, float] | None = None) -> int | None:
        """The best checkpoint's step; a UserError where a kept step's val loss cannot be
        read, since that step may be the best (a worse one was chosen without a word).
        `evaluated`: val losses by step (the metrics') for checkpoints saved without one: a
        stop during an evaluation saves the step, and the resumed run evaluates it again."""
        unread = [s for s in self.steps()
                  if file_exists(self._score_file(s)) and self._score(s) is None]
        if unread:
            raise UserError(f"the val loss saved with the checkpoint at step {unread[0]} cannot "
                            f"be read ({self._score_file(unread[0])}: damaged, or not "
                            f"readable): the best checkpoint is unknown; choose one with --step "
                            f"(available: {', '.join(map(str, self.steps()))})")
        candidates = [(s, evaluated[s]) for s in self.steps()
                      if s in (evaluated or {}) and not file_exists(self._score_file(s))]
        if (scored := self.best()) is not None:
            candidates.append(scored)
        return min(candidates, key=lambda item: item[1])[0] if candidates else None

    def save(self, step: int, tree: Any, val_loss: float | None = None) -> None:
        """Starts writing `tree` (and its val loss, if it was evaluated) in the background; the
        previous checkpoint stays intact until this one is complete (orbax writes to a
        temporary folder and renames it). A failure of this save or of the one before is
        raised as one UserError, here or at `check()`."""
        self._finish_pending()
        if not self.directory.is_dir():  # orbax would make it again, a run's other files gone
            self._fail(step, None)
        tree = jax.tree.map(np.asarray, tree)
        self._pending = step
        metrics = None if val_loss is None else {"val_loss": float(val_loss)}
        try:
            self._manager.save(step, args=ocp.args.StandardSave(tree), metrics=metrics)
        except Exception as e:
            self._fail(step, e)

    def check(self) -> None:
        """Raises if the save in flight has failed; cheap, so the trainer calls it every chunk
        and a failed save stops the run within one chunk."""
        if self._pending is not None and not self._manager.is_saving_in_progress():
            self._finish_pending()

    def _finish_pending(self) -> None:
        """Waits for the save in flight and checks that its folder was written."""
        step, self._pending = self._pending, None
        if step is None:
            return
        try:
            self._manager.wait_until_finished()
            self._manager.check_for_errors()
        except Exception as e:
            if not self._complete(step):
                self._fail(step, e)
            if coordination_lost(e):  # saved, but the run cannot go on
                raise UserError(f"{describe_failure(e)}; the checkpoint of step {step} is saved "
                                f"in {self.directory}") from None
            # Saved: what failed is the deletion of a checkpoint that the newest replace (a
            # folder that cannot be deleted). Training goes on; the old one stays on disk.
            if not self._cleanup_failed:
                print(f"warning: the checkpoint of step {step} is saved, but an older one that "
                      f"it replaces could not be deleted ({describe_failure(e)}): it stays "
                      f"in {self.directory}", file=sys.stderr)
            self._cleanup_failed = True
        if not (self.directory / str(step)).is_dir():
            self._fail(step, None)

    def _complete(self, step: int) -> bool:
        """Whether orbax finished the checkpoint of `step`: its folder renamed into place,
        with the metadata it writes last."""
        return self.directory.is_dir() and file_exists(
            self.directory / str(step) / "_CHECKPOINT_METADATA")

    def _fail(self, step: int, error: BaseException | None):
        """Raises the one line that says which save failed, why, and what is kept; clears the
        half-written folder away, so that a full disk gets its space back."""
        self._failed = True
        shutil.rmtree(self.directory / f"{step}.orbax-checkpoint-tmp", ignore_errors=True)
        if not self.directory.is_dir():  # not "no earlier checkpoint": they went with it
            gone = "the workdir" if not self.directory.parent.is_dir() else "it"
            raise UserError(f"cannot save the checkpoint of step {step}: {self.directory} is "
                            f"gone ({gone} was moved or deleted while the run trained); the "
                            f"checkpoints saved before went with it")
        reason = describe_failure(error) if error is not None else "its folder was not written"
        kept = [s for s in self._on_disk() if s != step]
        kept_text = (f"the checkpoint of step {kept[-1]} is kept" if kept
                     else "no earlier checkpoint exists")
        raise UserError(f"cannot save the checkpoint of step {step} in {self.directory}: "
                        f"{reason}; {kept_text}")

    def _on_disk(self) -> list[int]:
        """Steps whose checkpoint folder is complete on disk (orbax renames it when done)."""
        try:
            return sorted(int(p.name) for p in self.directory.iterdir() if p.name.isdigit())
        except OSError:
            return []

    def restore(self, step: int, target: Any) -> Any:
        """The checkpoint at `step` as host arrays shaped like `target` (arrays or
        ShapeDtypeStructs); refuses, naming the first differing leaf, if they do not match."""
        folder = self.directory / str(step)
        strange = [p for p in folder.rglob("*") if not (p.is_file() or p.is_dir())]
        if strange:  # a pipe or a device in a checkpoint: reading it would block forever
            raise DamagedCheckpoint(f"{strange[0]} is not a regular file")
        # The item's own metadata: the manager's would also read the val-loss file.
        saved = ocp.StandardCheckpointHandler().metadata(folder / "default")
        saved = getattr(saved, "tree", saved)
        if not saved:  # its metadata is gone: damage, not another model
            raise DamagedCheckpoint("its metadata is missing")
        problem = first_mismatch(saved, target)
        if problem:
            raise UserError(f"checkpoint {self.directory / str(step)} does not match the model "
                            f"this config builds: {problem}")
        target = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), target)
        return self._manager.restore(step, args=ocp.args.StandardRestore(target))

    def restore_newest_good(self, target: Any, step: int | None = None,
                            quarantine: bool = False, best: bool = False) -> tuple[int, Any]:
        """(step, tree) of the newest checkpoint that restores (or of `step`, chosen as the
        best one with `best`). A damaged one (truncated or garbage files) is reported and
        skipped, and with `quarantine` moved to WORKDIR/checkpoints_damaged/, never deleted,
        so that the run can save that step again. When none restores, the one error names them
        all (and no warning precedes it)."""
        damaged, warnings, tried = [], [], set()
        while True:
            candidates = [step] if step is not None else [
                s for s in self.steps()[::-1] if s not in tried]
            if not candidates or candidates[0] in tried:
                break
            candidate = candidates[0]
            tried.add(candidate)
            try:
                tree = self.restore(candidate, target)
            except Exception as e:  # orbax and tensorstore raise many types for bad bytes
                if self._deleted_meanwhile(candidate):
                    if step is not None:
                        raise UserError(f"{self._chosen(step, best)} was deleted while it was "
                                        f"read" + (": a run training there saved a better or a "
                                                   "newer one in its place; run the command "
                                                   "again" if best else " (a run training there "
                                                   "keeps only its newest)")) from None
                    continue  # a run training here rotated it away: not damage; list again
                if isinstance(e, UserError):  # a different model: refuse, whatever else is there
                    raise
                why = describe_failure(e)
                if coordination_lost(e):  # not damage: nothing is to be set aside
                    raise UserError(f"cannot read the checkpoint at step {candidate} in "
                                    f"{self.directory}: {why}") from None
                if why in (os.strerror(errno.EACCES), os.strerror(errno.EPERM)):
                    for line in warnings:  # what happened to the newer ones before it
                        print(line, file=sys.stderr)
                    raise UserError(  # not damaged: neither skipped for an older one nor moved
                        f"cannot read the checkpoint at step {candidate} in {self.directory}: "
                        f"{why}; give this user read access to it") from None
                damaged.append(candidate)
                warnings.append(f"warning: the checkpoint at step {candidate} is damaged "
                                f"({why})")
                if quarantine:
                    where = self.set_aside(candidate, why="is damaged")
                    warnings.append(f"warning: moved it to {where}")
                continue
            for line in warnings:
                print(line, file=sys.stderr)
            return candidate, tree
        if not damaged:
            raise UserError(f"no checkpoint in {self.directory} is left to restore: a run "
                            f"training there deleted them while they were read")
        moved = f"; moved to {self.directory.with_name(DAMAGED)}" if quarantine else ""
        if step is not None:  # the one chosen: the others were never tried
            others = [s for s in self.steps() if s != step]
            raise UserError(f"{self._chosen(step, best)} is damaged ({why}){moved}; " + (
                f"the others: {', '.join(map(str, others))} (choose one with --step)"
                if others else "no other checkpoint exists"))
        raise NoneRestores(f"no checkpoint in {self.directory} can be restored: step(s) "
                        f"{', '.join(map(str, damaged))} damaged{moved}")

    def list_again(self) -> None:
        """Every process reads the listing again once all have restored: process 0 may have
        set damaged checkpoints aside, which the others' listing still held (their save of
        that step again then failed, "its folder was not written")."""
        _all_processes_reach("restored")
        self._manager.reload()

    def _chosen(self, step: int, best: bool) -> str:
        """The checkpoint a command asked for, as the subject of its error."""
        where = f"step {step} in {self.directory}"
        return f"the best checkpoint, at {where}," if best else f"the checkpoint at {where}"

    def _deleted_meanwhile(self, step: int) -> bool:
        """Whether `step` is gone from the listing: a run training in this workdir deletes its
        oldest checkpoints as it saves new ones, even while another command reads them. The
        listing is read again first, so that the next look finds the checkpoint saved in its
        place. A folder still being removed is looked at again a moment later, and so is a
        listing that failed because the trainer removed a folder while it was read."""
        folder = self.directory / str(step)
        for wait in (0.0, 0.25, 0.5):
            time.sleep(wait)
            try:
                self._manager.reload()
            except (OSError, ValueError):  # a folder vanished as the listing read it
                continue
            if not folder.exists() or step not in self._manager.all_steps():
                return True
        return not folder.exists()

    def set_aside(self, step: int, why: str = "cannot be resumed") -> Path:
        """Moves checkpoint `step` to WORKDIR/checkpoints_damaged/STEP.TIME, never deleting
        it; returns where it went."""
        aside = self._aside(f"the checkpoint at step {step} {why}")
        destination = aside / f"{step}.{int(time.time())}"
        os.replace(self.directory / str(step), destination)
        self._manager.reload()
        return destination

    def _aside(self, what: str) -> Path:
        """WORKDIR/checkpoints_damaged/, made if need be; `what` goes there, and where that
        name is a file, it is the one line that says so."""
        aside = self.directory.with_name(DAMAGED)
        if aside.exists() and not aside.is_dir():
            raise UserError(f"{what}, and {aside}, where it would be set aside, is a file: move "
                            f"that file away")
        aside.mkdir(exist_ok=True)
        return aside

    def wait(self) -> None:
        """Waits for the save in flight; raises if it failed."""
        self._finish_pending()

    def close(self) -> None:
        """Waits for the save in flight and stops orbax's threads. After a failure it does not
        wait: the error is on its way to the user and the process is about to exit."""
        if self._failed:
            return
        self._finish_pending()
        self._manager.close()


def _all_processes_reach(name: str) -> None:
    """A barrier of every process of a multi-process run; nothing alone."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
