"""The files of a run's workdir besides checkpoints: config and vocabulary as JSON, a lock.

Everything a run writes lives under its workdir, so a run is one folder that can be copied
and sampled from. Nothing here is pickled or executed: config and vocab are plain JSON.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import ml_collections

from gpt_jax.errors import UserError
from gpt_jax.tokenizer import CharTokenizer

CONFIG = "config.json"
VOCAB = "vocab.json"
METRICS = "metrics.jsonl"
LOCK = "train.lock"


def prepare(workdir: str | Path) -> Path:
    """Creates the workdir (absolute), or says why it cannot be written."""
    path = Path(workdir).expanduser().absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create workdir {path}: {e.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"workdir {path} is not writable")
    return path


def write_atomic(path: Path, text: str) -> None:
    """Write-then-rename, so a crash never leaves a half-written file behind."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def save_config(workdir: Path, config: ml_collections.ConfigDict) -> None:
    write_atomic(workdir / CONFIG, config.to_json(indent=2, sort_keys=True))


def load_config(workdir: str | Path) -> ml_collections.ConfigDict | None:
    """The run's config; fields added to the schema after it was saved take their defaults."""
    from gpt_jax.config import base_config

    path = Path(workdir) / CONFIG
    if not path.exists():
        return None
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {path}: {e}") from None
    config = base_config()
    config.update(stored)
    return config


def save_vocab(workdir: Path, tokenizer: CharTokenizer) -> None:
    tokenizer.save(workdir / VOCAB)


def load_vocab(workdir: str | Path) -> CharTokenizer | None:
    path = Path(workdir) / VOCAB
    return CharTokenizer.load(path) if path.exists() else None


def config_differences(old: ml_collections.ConfigDict, new: ml_collections.ConfigDict,
                       section: str) -> list[str]:
    """'train.num_steps: 2000 → 3000' for every field of `section` that changed."""
    old_s, new_s = old.get(section, {}), new.get(section, {})
    return [f"{section}.{key}: {old_s.get(key)!r} → {new_s.get(key)!r}"
            for key in sorted(set(old_s) | set(new_s)) if old_s.get(key) != new_s.get(key)]


class WorkdirLock:
    """An exclusive lock on the workdir, held while training. The OS drops it when the
    process dies, however it dies, so a crash never leaves the workdir locked."""

    def __init__(self, workdir: Path):
        self.path = workdir / LOCK
        self._file = None

    def __enter__(self) -> WorkdirLock:
        self._file = open(self.path, "a+")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.seek(0)
            holder = self._file.read().strip() or "another process"
            self._file.close()
            raise UserError(f"workdir {self.path.parent} is in use by a running trainer "
                            f"(pid {holder}); wait for it or choose another --workdir") from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(str(os.getpid()))
        self._file.flush()
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()
