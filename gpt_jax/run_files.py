"""The files of a run's workdir besides checkpoints: config and vocabulary as JSON, a lock.

Everything a run writes lives under its workdir, so a run is one folder that can be copied
and sampled from. Nothing here is pickled or executed: config and vocab are plain JSON.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import stat
import sys
from pathlib import Path

import ml_collections

from gpt_jax.errors import UserError
from gpt_jax.user_files import user_path

# Every file and folder a run writes in its workdir, named once.
CONFIG = "config.json"
VOCAB = "vocab.json"
METRICS = "metrics.jsonl"
LOCK = "train.lock"
CHECKPOINTS = "checkpoints"  # orbax's step folders
DAMAGED = "checkpoints_damaged"  # where damaged checkpoints are moved, never deleted
TENSORBOARD = "tensorboard"
DATA = "data.json"  # the fingerprint of the data the run trains on (resume.check_data)
SAMPLES = "samples"  # step_NNNNNN.txt, a sample at every evaluation
LOSS_PLOT = "loss.png"


def check_checkpoint_path(path: Path) -> None:
    """A UserError when tensorstore, which writes and reads orbax's arrays, would misread
    `path` (absolute): it takes a backslash for a separator and `[...]` for a pattern. Its
    saves there seem to succeed and leave a checkpoint that does not restore. And orbax
    turns every "gs:/" into "gs://", a Cloud Storage bucket: a folder named "logs:" failed
    at the first save, after the steps before it. A path that is not UTF-8 text (a byte that
    the file-name encoding could not read) failed every save, and its restores called every
    checkpoint damaged and set them aside."""
    text, encoding = str(path), sys.getfilesystemencoding()
    try:
        text.encode("utf-8")
        # another encoding reads a name's bytes as other characters, which orbax writes as UTF-8
        utf8 = encoding == "utf-8" or text.isascii()
    except UnicodeEncodeError:  # bytes the file-name encoding could not read: \udcfc
        utf8 = False
    if not utf8:
        why = ("a folder name there is not UTF-8 text: rename it" if encoding == "utf-8" else
               f"this environment reads file names as {encoding}: set a UTF-8 locale "
               f"(LC_ALL=C.UTF-8)")
        raise UserError(f"cannot keep checkpoints under {ascii(text)[1:-1]}: the checkpoint "
                        f"library needs UTF-8 paths (its checkpoints would all seem damaged); "
                        f"{why}") from None
    if "\\" in text or re.search(r"\[.*\]", text):
        raise UserError(f"cannot keep checkpoints under {path}: the checkpoint library reads "
                        f"a backslash or brackets [...] in a path as something else; choose "
                        f"a --workdir without them")
    if "gs:/" in text + "/":
        raise UserError(f"cannot keep checkpoints under {path}: the checkpoint library reads "
                        f"a folder name ending in 'gs:' as a Cloud Storage address (gs://); "
                        f"choose a --workdir without one")


def prepare(workdir: str | Path, create: bool = True) -> Path:
    """Creates the workdir (absolute), or says why it cannot be written. Without `create`,
    only the checks of the path (another process creates it)."""
    path = user_path(workdir).absolute()
    check_checkpoint_path(path)
    folder = runs_checkpoints_holding(path)  # the other run would prune or misread this one
    if folder is not None:
        where = ("the checkpoints folder" if folder == Path(os.path.realpath(path))
                 else "inside the checkpoints")
        raise UserError(f"workdir {path} is {where} of the run in {folder.parent}: choose "
                        f"a folder outside {folder}")
    if path.exists() and not path.is_dir():
        raise UserError(f"workdir {path} is {kind_of(path)}, not a folder")
    if path.is_symlink() and not path.exists():  # mkdir would say only "File exists"
        raise UserError(f"workdir {path} is a symbolic link to {os.readlink(path)}, which does "
                        f"not exist or links back to itself: remove the link or create its "
                        f"target")
    if not create:
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create workdir {path}: {e.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"workdir {path} is not writable")
    return path


def runs_checkpoints_holding(path: Path, kinds: tuple[str, ...] = (CHECKPOINTS,)) -> Path | None:
    """The checkpoints folder of a run (a folder of one of `kinds`, beside a run's config and
    vocabulary) that `path` is, or is inside; None if none. A folder written there would read
    as a checkpoint, damaged."""
    real = Path(os.path.realpath(path))
    for folder in (real, *real.parents):
        if folder.name in kinds and all(os.path.isfile(folder.parent / name)
                                        for name in (CONFIG, VOCAB)):
            return folder
    return None


def file_exists(path: Path) -> bool:
    """Whether a run's file is there; anything but a regular file in its place (a FIFO, a
    device, a socket, a folder, or a symlink to one) is one UserError naming it, before it is
    opened: opening a FIFO to read blocks until a writer comes, and /dev/zero never ends."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return False
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    if not stat.S_ISREG(mode):
        raise UserError(f"{path} is {kind_of(path)}, not a regular file: move it away")
    return True


def kind_of(path: Path) -> str:
    """'a file', 'a folder', 'a FIFO', ... for a path that exists."""
    mode = os.stat(path).st_mode
    return ("a file" if stat.S_ISREG(mode) else "a folder" if stat.S_ISDIR(mode)
            else "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device")


def write_atomic(path: Path, content: str | bytes) -> None:
    """Write-then-rename, so a crash or a full disk never leaves a half-written file in place
    of a good one; a file that cannot be written (disk full, permissions, a folder in its
    place) is one UserError naming it. The temporary file's name is this write's own, so two
    programs writing the same result never write into each other's; a result that is a link
    is written where the link points, and stays a link."""
    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    if target.is_dir():
        raise UserError(f"cannot write {path}: a folder is in its place; move it away")
    data = content.encode("utf-8") if isinstance(content, str) else content
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        # O_EXCL: a new file of this write's own, never opened through something put there
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # on disk before it replaces the old file: a power cut too
        os.replace(tmp, target)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise UserError(f"cannot write {path}: {e.strerror}") from None


def save_config(workdir: Path, config: ml_collections.ConfigDict) -> None:
    write_atomic(workdir / CONFIG, config.to_json(indent=2, sort_keys=True))


def load_config(workdir: str | Path) -> ml_collections.ConfigDict | None:
    """The run's config; fields added to the schema after it was saved take their defaults."""
    from gpt_jax.config import base_config, check_schema, reset_unread

    path = Path(workdir) / CONFIG
    if not file_exists(path):
        return None
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    if not isinstance(stored, dict):
        raise UserError(f"{path} is damaged: it holds no config")
    model = stored.get("model")
    if isinstance(model, dict) and isinstance(model.get("pos_emb"), bool):  # saved before
        model["pos_emb"] = "learned" if model["pos_emb"] else "none"  # it was a string
    config = base_config()
    check_schema(_with_defaults(stored, config), source=str(path))
    config.update(stored)
    reset_unread(config)
    return config


def missing_fields(workdir: str | Path, section: str) -> list[str]:
    """The fields of `section` that the run's config.json lacks, with the defaults they were
    given ('model.n_head = 4'): a config.json saved before they existed, or edited."""
    from gpt_jax.config import base_config

    try:
        stored = json.loads((Path(workdir) / CONFIG).read_text(encoding="utf-8"))[section]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    defaults = base_config()[section]
    return [f"{section}.{k} = {defaults[k]!r}" for k in defaults
            if isinstance(stored, dict) and k not in stored]


def _with_defaults(stored: dict, schema: ml_collections.ConfigDict) -> dict:
    """`stored` with the fields it lacks taken from `schema`: a run saved before a field was
    added to the schema is not damaged."""
    merged = {}
    for key, default in schema.items():
        value = stored.get(key, default)
        if isinstance(default, ml_collections.ConfigDict) and isinstance(value, dict):
            value = _with_defaults(value, default)
        merged[key] = value
    merged.update({k: v for k, v in stored.items() if k not in merged})
    return merged


def save_vocab(workdir: Path, vocab) -> None:
    """The run's vocabulary (characters, BPE merges, or the pairs' characters), as JSON."""
    write_atomic(workdir / VOCAB, vocab.to_json())


def load_vocab(workdir: str | Path):
    from gpt_jax.tokenizer import load_tokenizer

    path = Path(workdir) / VOCAB
    return load_tokenizer(path) if file_exists(path) else None


def config_differences(old: ml_collections.ConfigDict, new: ml_collections.ConfigDict,
                       section: str | None = None) -> list[str]:
    """'train.num_steps: 2000 → 3000' for every field (of `section`, or of the whole config)
    that differs between two configs."""
    old_f, new_f = _flatten(old.to_dict()), _flatten(new.to_dict())
    if section is not None:
        old_f = {k: v for k, v in old_f.items() if k.startswith(section + ".")}
        new_f = {k: v for k, v in new_f.items() if k.startswith(section + ".")}
    return [f"{key}: {old_f.get(key)!r} → {new_f.get(key)!r}"
            for key in sorted(set(old_f) | set(new_f)) if old_f.get(key) != new_f.get(key)]


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


class WorkdirLock:
    """An exclusive lock on the workdir, held while training. The OS drops it when the
    process dies, however it dies, so a crash never leaves the workdir locked. The lock file
    holds the owner's pid and is removed on release; an empty checkpoints folder, and a workdir
    the run created and left empty (it failed before writing anything), are removed too."""

    def __init__(self, workdir: Path, created: bool = False):
        self.path = workdir / LOCK
        self.created = created
        self._file = None

    def __enter__(self) -> WorkdirLock:
        while True:
            file_exists(self.path)  # a FIFO or a device in its place is refused, not opened
            try:
                self._file = open(self.path, "a+")
            except OSError as e:
                raise UserError(f"cannot write {self.path}: {e.strerror}") from None
            try:
                fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._file.seek(0)
                holder = self._file.read().strip() or "another process"
                self._file.close()
                raise UserError(
                    f"workdir {self.path.parent} is in use by a running trainer (pid {holder}); "
                    "wait for it or choose another --workdir") from None
            # The holder before us may have removed the file between our open and our lock:
            # then we hold a lock on a file nobody else can see, and must take the new one.
            try:
                same = os.path.samestat(os.fstat(self._file.fileno()), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            self._file.close()
        try:  # unbuffered: a failed write leaves nothing that closing would write again
            os.ftruncate(self._file.fileno(), 0)
            os.write(self._file.fileno(), str(os.getpid()).encode())
        except OSError as e:
            self.__exit__()
            raise UserError(f"cannot write {self.path}: {e.strerror}") from None
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()  # while still holding the lock: see __enter__
        self._file.close()
        # only folders that hold nothing: a run stopped before its first save leaves none
        workdir = self.path.parent
        for folder in [workdir / CHECKPOINTS] + ([workdir] if self.created else []):
            with contextlib.suppress(OSError):
                folder.rmdir()
