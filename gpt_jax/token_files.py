"""A prepared dataset folder (DATADIR), the reader's side: flat token files memory-mapped
after checking them against meta.json, and the lock that keeps prepare from rewriting them
under a training run.

DATADIR holds train.bin and val.bin (the token stream, split), tokenizer.json and meta.json;
prepare writes meta.json last, so a folder whose files do not match it is refused.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
from pathlib import Path

import numpy as np

from gpt_jax.errors import UserError
from gpt_jax.tokenizer import BPETokenizer, CharTokenizer, load_tokenizer
from gpt_jax.user_files import not_there

FORMAT_VERSION = 1
TRAIN_FILE, VAL_FILE = "train.bin", "val.bin"
TOKENIZER_FILE, META_FILE, LOCK_FILE = "tokenizer.json", "meta.json", ".lock"
PREPARE_TMP = ".prepare-tmp"  # inside DATADIR, so that renaming into place is atomic
DATASET_FILES = (META_FILE, TRAIN_FILE, VAL_FILE, TOKENIZER_FILE)
TOKEN_DTYPES = ("uint8", "uint16", "uint32")
META_FIELDS = {"format_version": int, "tokenizer": str, "vocab_size": int, "dtype": str,
               "train_tokens": int, "val_tokens": int, "sources": list}
PREPARE_HINT = "run python -m gpt_jax.prepare --input=... --out={datadir}"


def token_dtype(vocab_size: int) -> np.dtype:
    """The narrowest unsigned integer type that holds every id of the vocabulary."""
    for name in TOKEN_DTYPES:
        if vocab_size - 1 <= np.iinfo(name).max:
            return np.dtype(name)
    raise UserError(f"a vocabulary of {vocab_size:,} symbols does not fit in 32-bit ids")


@dataclasses.dataclass(frozen=True)
class PreparedData:
    """A checked DATADIR: the two splits as read-only memory maps of the stored dtype."""

    train: np.memmap  # (N_train,)
    val: np.memmap  # (N_val,)
    tokenizer: CharTokenizer | BPETokenizer
    meta: dict


def is_prepared_dir(path: str | Path) -> bool:
    """True for a folder that holds, or was being written to hold, a prepared dataset (any of
    its files): open_prepared then says whether it is complete."""
    p = Path(path)
    return p.is_dir() and any((p / name).exists() for name in (*DATASET_FILES, PREPARE_TMP))


def dataset_holding(path: str | Path) -> Path | None:
    """The prepared dataset folder that `path` is one of the files of, or None: such a file
    is token ids and JSON, never text to read as a corpus."""
    p = Path(path)
    folder = p.parent
    if p.name in DATASET_FILES and (folder / TRAIN_FILE).is_file() \
            and ((folder / META_FILE).exists() or (folder / TOKENIZER_FILE).exists()):
        return folder
    return None


def in_vocabulary(tokens: np.ndarray, vocab_size: int, stream: np.ndarray) -> np.ndarray:
    """`tokens` (read from `stream`), once checked to be ids of the vocabulary. Only a
    prepared file can hold others (damaged, or edited), and nothing downstream would say: the
    embedding lookup clamps an id past the table, and the loss of a target past the logits is
    finite; a run would train on garbage without a word."""
    top = int(tokens.max(initial=0))
    if top >= vocab_size:
        where = getattr(stream, "filename", None) or "the token stream"
        raise UserError(f"{where} holds token id {top}, past the vocabulary of {vocab_size}: "
                        f"the prepared data is damaged; prepare it again (python -m "
                        f"gpt_jax.prepare, the same --input and --out: it rewrites it)")
    return tokens


def read_meta(datadir: str | Path) -> dict:
    """meta.json, with every field a reader relies on present and of the right type."""
    path = Path(datadir) / META_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {path}: {e}; {PREPARE_HINT.format(datadir=datadir)}"
                        ) from None
    if not isinstance(meta, dict):
        raise UserError(f"{path} is not a JSON object; {PREPARE_HINT.format(datadir=datadir)}")
    for field, kind in META_FIELDS.items():
        if not isinstance(meta.get(field), kind) or isinstance(meta.get(field), bool):
            raise UserError(f"{path} lacks the field {field!r} (or it is not a "
                            f"{kind.__name__}); {PREPARE_HINT.format(datadir=datadir)}")
    if meta["format_version"] != FORMAT_VERSION:
        raise UserError(f"{path} has format_version {meta['format_version']}, this gpt-jax "
                        f"reads {FORMAT_VERSION}; {PREPARE_HINT.format(datadir=datadir)}")
    if meta["dtype"] not in TOKEN_DTYPES:
        raise UserError(f"{path}: dtype {meta['dtype']!r} is not one of {TOKEN_DTYPES}")
    if meta["vocab_size"] >= 1 and np.dtype(meta["dtype"]) != token_dtype(meta["vocab_size"]):
        # (an edited one: ids read as the wrong width are garbage, each below the vocabulary)
        raise UserError(f"{path}: dtype {meta['dtype']} is not the one prepare writes for a "
                        f"vocabulary of {meta['vocab_size']:,} ({token_dtype(meta['vocab_size'])})"
                        f"; {PREPARE_HINT.format(datadir=datadir)}")
    return meta


def open_prepared(datadir: str | Path) -> PreparedData:
    """Opens DATADIR after checking that its files are complete and agree with meta.json, so
    a half-written or mismatched dataset never reaches a trainer."""
    d = Path(datadir)
    if not d.exists():
        raise not_there("data folder", d)
    if not d.is_dir():
        raise UserError(f"{d} is not a folder of prepared data (train.bin, val.bin, ...)")
    missing = [name for name in DATASET_FILES if not (d / name).is_file()]
    foreign = sorted(name for name in os.listdir(d)
                     if name not in DATASET_FILES and not name.startswith("."))
    if META_FILE in missing and foreign:  # nanoGPT's train.bin and meta.pkl, say
        raise UserError(f"{d} is not a folder that gpt_jax.prepare wrote (it has no {META_FILE}"
                        f" and holds {foreign[0]!r}): prepare the text into a new folder, "
                        f"{PREPARE_HINT.format(datadir='NEW_FOLDER')[4:]}")
    if len(missing) == len(DATASET_FILES) and (d / PREPARE_TMP).exists():
        raise UserError(f"{d} holds a prepare that did not finish (it was stopped or killed, "
                        f"or ran out of memory): {PREPARE_HINT.format(datadir=d)} again")
    if missing:
        raise UserError(f"{d} is incomplete: {', '.join(missing)} missing; "
                        f"{PREPARE_HINT.format(datadir=d)}")
    meta = read_meta(d)
    dtype = np.dtype(meta["dtype"])
    splits = {}
    for name, field in ((TRAIN_FILE, "train_tokens"), (VAL_FILE, "val_tokens")):
        # Kept open, and read through (dataset.read_windows): a folder prepared again, moved
        # or deleted while a run trains is not what it reads from then on.
        source = open(d / name, "rb")  # noqa: SIM115
        n_tokens, size = meta[field], os.fstat(source.fileno()).st_size
        if n_tokens < 1 or size != n_tokens * dtype.itemsize:
            source.close()
            raise UserError(f"{d / name} holds {size:,} bytes but meta.json says {field} = "
                            f"{n_tokens:,} of {dtype.name}: an interrupted or mismatched "
                            f"prepare; {PREPARE_HINT.format(datadir=d)}")
        splits[name] = np.memmap(source, dtype=dtype, mode="r", shape=(n_tokens,))
        splits[name].source = source
    tokenizer = load_tokenizer(d / TOKENIZER_FILE)
    if tokenizer.vocab_size != meta["vocab_size"]:
        raise UserError(f"{d / TOKENIZER_FILE} has {tokenizer.vocab_size:,} symbols but "
                        f"meta.json says vocab_size = {meta['vocab_size']:,}; "
                        f"{PREPARE_HINT.format(datadir=d)}")
    if tokenizer.kind != meta["tokenizer"]:
        raise UserError(f"{d / TOKENIZER_FILE} is a {tokenizer.kind} tokenizer but meta.json "
                        f"says {meta['tokenizer']}; {PREPARE_HINT.format(datadir=d)}")
    return PreparedData(splits[TRAIN_FILE], splits[VAL_FILE], tokenizer, meta)


class DataDirLock:
    """An advisory lock on DATADIR/.lock: shared for trainers that read it, exclusive for
    prepare, which rewrites it. Non-blocking; the OS drops it when the process dies."""

    def __init__(self, datadir: str | Path, exclusive: bool):
        self.path = Path(datadir) / LOCK_FILE
        self.exclusive = exclusive
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            if exclusive:
                raise UserError(f"cannot open the lock file {self.path}: {e.strerror}") from None
            # A reader of a dataset it may not write (a read-only mount, another user's): a
            # shared lock needs only reading, and where not even that is possible, nobody
            # here can rewrite the dataset either.
            try:
                self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                self._fd = -1
                return
        try:
            fcntl.flock(self._fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            if exclusive:
                raise UserError(f"{datadir} is in use by a training run (or another prepare); "
                                f"stop it, or prepare into another --out") from None
            raise UserError(f"{datadir} is being written by python -m gpt_jax.prepare; wait "
                            f"for it to finish") from None

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> DataDirLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()
