"""Checkpoints through orbax, behind one small class: nothing else in gpt_jax imports orbax.

A checkpoint holds host (unreplicated) arrays, so one saved on N devices restores on M.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from gpt_jax.errors import UserError

# orbax logs every save and restore at INFO; a training log has no room for that.
logging.getLogger("absl").setLevel(logging.WARNING)


@contextlib.contextmanager
def _quiet():
    """Silences orbax's warnings about the options we chose on purpose (read-only mode)."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


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


def _silence_orphaned_reads() -> None:
    """After a failed restore, reads still in flight complete into orbax's closed event loop
    and each prints a 'RuntimeError: Event loop is closed' traceback; drop exactly those."""
    default = sys.unraisablehook
    if getattr(default, "silences_orphaned_reads", False):
        return

    def hook(unraisable):
        if not (isinstance(unraisable.exc_value, RuntimeError)
                and str(unraisable.exc_value) == "Event loop is closed"):
            default(unraisable)

    hook.silences_orphaned_reads = True
    sys.unraisablehook = hook


class Checkpoints:
    """The step-numbered checkpoints of one run, under WORKDIR/checkpoints."""

    def __init__(self, workdir: str | Path, keep: int = 3, read_only: bool = False):
        self.directory = Path(workdir).absolute() / "checkpoints"  # orbax wants absolute paths
        if read_only:  # for sampling: touches nothing on disk
            options = ocp.CheckpointManagerOptions(read_only=True, create=False,
                                                   save_interval_steps=0)
        else:  # a save killed half-way leaves a temporary folder: clear it away at start
            options = ocp.CheckpointManagerOptions(max_to_keep=keep, cleanup_tmp_directories=True)
        with _quiet():
            self._manager = ocp.CheckpointManager(self.directory, options=options,
                                                  item_handlers=ocp.StandardCheckpointHandler())

    def steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, tree: Any) -> None:
        """Starts writing `tree` in the background; the previous checkpoint stays intact until
        this one is complete (orbax writes to a temporary folder and renames it)."""
        tree = jax.tree.map(np.asarray, tree)
        self._manager.save(step, args=ocp.args.StandardSave(tree))

    def restore(self, step: int, target: Any) -> Any:
        """The checkpoint at `step` as host arrays shaped like `target` (arrays or
        ShapeDtypeStructs); refuses, naming the first differing leaf, if they do not match."""
        saved = self._manager.item_metadata(step)
        saved = getattr(saved, "tree", saved)
        problem = first_mismatch(saved, target)
        if problem:
            raise UserError(f"checkpoint {self.directory / str(step)} does not match the model "
                            f"this config builds: {problem}")
        target = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), target)
        return self._manager.restore(step, args=ocp.args.StandardRestore(target))

    def restore_newest_good(self, target: Any, step: int | None = None,
                            quarantine: bool = False) -> tuple[int, Any]:
        """(step, tree) of the newest checkpoint that restores (or of `step`). A damaged one
        (truncated or garbage files) is reported and skipped, and with `quarantine` moved to
        WORKDIR/checkpoints_damaged/, never deleted, so that the run can save that step again."""
        damaged = []
        for candidate in ([step] if step is not None else self.steps()[::-1]):
            try:
                return candidate, self.restore(candidate, target)
            except UserError:  # a different model, not damage: refuse, whatever else is there
                raise
            except Exception as e:  # orbax and tensorstore raise many types for bad bytes
                _silence_orphaned_reads()
                reason = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}" if str(e) \
                    else type(e).__name__
                damaged.append(candidate)
                print(f"warning: the checkpoint at step {candidate} is damaged ({reason})",
                      file=sys.stderr)
                if quarantine:
                    self._quarantine(candidate)
        raise UserError(f"no checkpoint in {self.directory} can be restored: step(s) "
                        f"{', '.join(map(str, damaged))} damaged")

    def _quarantine(self, step: int) -> None:
        aside = self.directory.with_name("checkpoints_damaged")
        aside.mkdir(exist_ok=True)
        destination = aside / f"{step}.{int(time.time())}"
        os.replace(self.directory / str(step), destination)
        print(f"warning: moved it to {destination}", file=sys.stderr)
        self._manager.reload()

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()
