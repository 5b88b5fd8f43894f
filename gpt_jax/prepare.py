"""`python -m gpt_jax.prepare --input=PATH --out=DATADIR`: UTF-8 text of any size → the flat
token files a trainer memory-maps (see token_files.py), in bounded memory.

Two streaming passes over the inputs: the first builds the tokenizer (counts characters, or
trains a byte-level BPE), the second encodes and appends ids to one token stream, which is
then split as the lecture splits it: the first (1 - val_fraction) is train, the rest val.
"""

from __future__ import annotations

if __name__ == "__main__":  # first, before the imports below, which take seconds (jax)
    from gpt_jax import first_step

    first_step.take(uses_jax=False)

import codecs
import contextlib
import dataclasses
import errno
import functools
import glob
import hashlib
import json
import os
import shutil
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import numpy as np
from absl import flags
from tqdm import tqdm

from gpt_jax import cli
from gpt_jax.errors import UserError
from gpt_jax.token_files import (
    DATASET_FILES,
    FORMAT_VERSION,
    LOCK_FILE,
    META_FILE,
    PREPARE_TMP,
    TOKENIZER_FILE,
    TRAIN_FILE,
    VAL_FILE,
    DataDirLock,
    dataset_holding,
    open_prepared,
    read_meta,
    token_dtype,
)
from gpt_jax.tokenizer import (
    BYTE_SYMBOLS,
    BPETokenizer,
    CharTokenizer,
    stream_pieces,
    train_bpe,
)
from gpt_jax.user_files import user_path

FLAGS = flags.FlagValues()  # this command's own: importing it defines no global flag
flags.DEFINE_multi_string("input", None, "A UTF-8 text file, a folder of them or a glob; "
                          "repeat it for more. Concatenated in the order given.", flag_values=FLAGS)
flags.DEFINE_string("out", None, "The dataset folder (DATADIR) to write.", flag_values=FLAGS)
flags.DEFINE_enum("tokenizer", "char", ["char", "bpe"], "char: one token per character; "
                  "bpe: a byte-level BPE vocabulary trained on the inputs.", flag_values=FLAGS)
flags.DEFINE_integer("vocab_size", None, "Symbols of the BPE vocabulary (default 4096).",
                     flag_values=FLAGS)
flags.DEFINE_float("val_fraction", 0.1, "The last fraction of the token stream, for validation.",
                   flag_values=FLAGS)

USAGE = ("usage: python -m gpt_jax.prepare --input=PATH [--input=PATH ...] --out=DATADIR "
         "[--tokenizer=char|bpe] [--vocab_size=N] [--val_fraction=0.1]")
DEFAULT_BPE_VOCAB = 4096
MAX_BPE_VOCAB = 1 << 20  # larger asks the BPE trainer for more memory than any corpus needs
CHUNK_BYTES = 4 << 20  # read and encode a few MB at a time, whatever the corpus size
GLOB_CHARS = "*?["
STREAM_FILE = "tokens.bin"
POLL_SECONDS = 0.05  # how often the main thread looks up from waiting for the tokenizer
BOM = "\ufeff"
T = TypeVar("T")
# What a write into a full or read-only disk raises, without naming the file it wrote.
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


@dataclasses.dataclass(frozen=True)
class Source:
    """One input file as read: its path as given, its size and the sha256 of its bytes."""

    path: str
    bytes: int
    sha256: str


def expand_inputs(inputs: Sequence[str], out: str | Path | None = None) -> list[str]:
    """Files to read, in order: each --input as given, a folder or glob as its files in sorted
    path order (hidden names and files inside `out` left out)."""
    files = []
    for arg in inputs:
        if os.path.isfile(arg):
            if out is not None and _inside(arg, out):
                raise UserError(f"--input={arg} is inside the output folder {out}")
            if dataset_holding(arg) is not None:
                raise UserError(f"--input={arg} is a file of the prepared dataset "
                                f"{dataset_holding(arg)}, not text: pass the text it was "
                                f"prepared from")
            files.append(arg)
            continue
        if os.path.isdir(arg):
            if dataset_holding(Path(arg) / META_FILE) is not None:
                raise UserError(f"--input={arg} is a prepared dataset, not text: pass the text "
                                f"it was prepared from (train on it with "
                                f"--config.data.path={arg})")
            found = _folder_files(arg)
        elif any(c in arg for c in GLOB_CHARS):
            found = []
            for match in sorted(glob.glob(arg, recursive=True)):
                found += _folder_files(match) if os.path.isdir(match) else [match]
            # once each: `dir/**` matches the folder, its subfolders and each file in them
            found = [f for f in dict.fromkeys(os.path.normpath(f) for f in found)
                     if os.path.isfile(f) and dataset_holding(f) is None]
            if not found:
                raise UserError(f"--input={arg} matches no files")
        elif os.path.exists(arg):
            raise UserError(f"--input={arg} is neither a file nor a folder")
        else:
            raise UserError(f"input not found: {arg}")
        outside = [f for f in found if out is None or not _inside(f, out)]
        if found and not outside:
            raise UserError(f"--input={arg}: every file it holds is inside the output folder "
                            f"{out}; write the prepared data elsewhere")
        if not outside:
            raise UserError(f"--input={arg}: the folder holds no files")
        found = outside
        files += found
    if not files:
        raise UserError(USAGE)
    for f in files:
        try:
            f.encode()
        except UnicodeEncodeError:
            raise UserError(f"the file name {ascii(f)[1:-1]} is not UTF-8, which the "
                            f"dataset's list of its files needs: rename it") from None
    return _once_each(files)


def _once_each(files: list[str]) -> list[str]:
    """`files` with each file kept at its first mention: the same text twice (a link, a
    folder linked into itself, an --input repeated) would put held-out text in training."""
    first: dict[tuple[int, int], str] = {}
    kept, again = [], []
    for f in files:
        identity = _identity(f)
        if identity in first:
            again.append(f"{f} is {first[identity]}")
        else:
            first[identity] = f
            kept.append(f)
    if again:
        print(f"note: {len(again)} of the inputs {'is a file' if len(again) == 1 else 'are files'}"
              f" already read ({again[0]}{', ...' if len(again) > 1 else ''}); each file is "
              f"read once", file=sys.stderr)
    return kept


def _identity(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    return st.st_dev, st.st_ino


def _folder_files(folder: str) -> list[str]:
    """The files under `folder`, linked folders included (as `folder/**` reads them), each
    folder once (a link to a folder above would loop); but hidden ones and the files of
    prepared datasets: an earlier prepare's output beside its text is not more text."""
    found, walked = [], set()
    for root, dirs, names in os.walk(folder, followlinks=True):
        try:
            st = os.stat(root)
        except OSError:
            st = None
        if st is not None and (st.st_dev, st.st_ino) in walked:
            dirs[:] = []
            continue
        if st is not None:
            walked.add((st.st_dev, st.st_ino))
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [os.path.join(root, n) for n in names if not n.startswith(".")
                  and dataset_holding(os.path.join(root, n)) is None]
    return sorted(f for f in found if os.path.isfile(f))


def _inside(path: str, folder: str | Path) -> bool:
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def read_text(path: str, bar: tqdm | None = None) -> Iterator[str]:
    """The text of one UTF-8 file in chunks, a byte-order mark at its start dropped; returns
    its Source. Invalid or truncated UTF-8 is a UserError naming the byte offset."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    digest, offset, at_start = hashlib.sha256(), 0, True
    try:
        with open(path, "rb") as f:
            while True:
                raw = f.read(CHUNK_BYTES)
                pending = len(decoder.getstate()[0])  # bytes of a character split by the read
                try:
                    text = decoder.decode(raw, final=not raw)
                except UnicodeDecodeError as e:
                    at = offset - pending + e.start
                    if not raw:
                        raise UserError(f"{path} ends in the middle of a UTF-8 character "
                                        f"(byte offset {at}): a truncated file?") from None
                    raise UserError(f"{path} is not UTF-8 text: invalid byte at offset {at}"
                                    ) from None
                digest.update(raw)
                offset += len(raw)
                if bar is not None:
                    bar.update(len(raw))
                if at_start and text:
                    text, at_start = text.removeprefix(BOM), False
                if text:
                    yield text
                if not raw:
                    return Source(path, offset, digest.hexdigest())
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None


def read_corpus(paths: Sequence[str], sources: list[Source], bar: tqdm | None = None
                ) -> Iterator[str]:
    """The concatenated text of `paths` in chunks; appends each file's Source as it ends."""
    for path in paths:
        sources.append((yield from read_text(path, bar)))


def code_points(text: str) -> np.ndarray:
    """(N,) uint32 code points of `text`, without a Python loop."""
    return np.frombuffer(text.encode("utf-32-le"), np.uint32)


def char_vocabulary(texts: Iterable[str]) -> CharTokenizer:
    """The sorted distinct characters of `texts`, counted a chunk at a time."""
    counts = np.zeros(0, np.int64)
    for text in texts:
        chunk_counts = np.bincount(code_points(text))
        if len(chunk_counts) > len(counts):
            counts = np.pad(counts, (0, len(chunk_counts) - len(counts)))
        counts[:len(chunk_counts)] += chunk_counts
    if not counts.any():
        raise UserError("the inputs hold no text")
    return CharTokenizer([chr(c) for c in np.flatnonzero(counts)])


def char_ids(texts: Iterable[str], tokenizer: CharTokenizer,
             dtype: np.dtype) -> Iterator[np.ndarray]:
    """Ids of `texts`, a chunk at a time, through a table indexed by code point."""
    id_of_code_point = np.full(sys.maxunicode + 1, -1, np.int32)
    id_of_code_point[[ord(c) for c in tokenizer.chars]] = np.arange(tokenizer.vocab_size)
    for text in texts:
        ids = id_of_code_point[code_points(text)]
        if ids.min() < 0:
            raise UserError("an input changed while it was being prepared (a character "
                            "the first pass did not see); run prepare again")
        yield ids.astype(dtype)


def bpe_ids(texts: Iterable[str], tokenizer: BPETokenizer,
            dtype: np.dtype) -> Iterator[np.ndarray]:
    """Ids of `texts`, a chunk at a time, the same as encoding their concatenation whole."""
    for pieces in stream_pieces(texts):
        yield _interruptibly(functools.partial(tokenizer.encode_pieces, pieces, dtype))


def _progress(total: int, desc: str) -> tqdm:
    """Bytes/s and ETA on a terminal; nothing in a pipe (a summary line follows each pass).
    In MB of 10^6 bytes, as the summary counts them (not 2^20: 19.1M beside "20.0 MB")."""
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1000,
                dynamic_ncols=True, file=sys.stdout, disable=None)


@contextlib.contextmanager
def _timed_pass(total: int, desc: str, log: Callable[[str], None]) -> Iterator[tqdm]:
    """A progress bar over `total` bytes, then one line with the pass's rate."""
    start = time.perf_counter()
    with _progress(total, desc) as bar:
        yield bar
    seconds = time.perf_counter() - start
    log(f"{desc}: {total / 1e6:,.1f} MB in {seconds:.1f} s "
        f"({total / 1e6 / max(seconds, 1e-9):,.1f} MB/s)")


def _up_to_date(out: Path, paths: list[str], sizes: list[int], settings: dict) -> bool:
    """True when DATADIR is a complete dataset of these inputs (same paths, sizes, sha256)
    made with these settings; the hashes are checked only when all else agrees."""
    try:
        meta = open_prepared(out).meta
    except UserError:
        return False
    stored = [s if isinstance(s, dict) else {} for s in meta["sources"]]
    if ({k: meta.get(k) for k in settings} != settings
            or [(s.get("path"), s.get("bytes")) for s in stored]
            != list(zip(paths, sizes, strict=True))
            or not isinstance(meta.get("outputs"), dict)):
        return False
    sources: list[Source] = []
    with _progress(sum(sizes), "checking inputs") as bar:
        for _ in read_corpus(paths, sources, bar):
            pass
    if [s.get("sha256") for s in stored] != [s.sha256 for s in sources]:
        return False
    # The outputs too: a damaged token file (the trainer refuses ids past the vocabulary) is
    # written again, not called up to date.
    return meta["outputs"] == _output_hashes(out)


def _output_hashes(folder: Path) -> dict[str, str]:
    """The sha256 of each file a dataset's tokens live in."""
    hashes = {}
    for name in (TRAIN_FILE, VAL_FILE, TOKENIZER_FILE):
        digest = hashlib.sha256()
        with open(folder / name, "rb") as f:
            while chunk := f.read(CHUNK_BYTES):
                digest.update(chunk)
        hashes[name] = digest.hexdigest()
    return hashes


def _write_stream(path: Path, ids_chunks: Iterable[np.ndarray]) -> int:
    """Appends each chunk of ids to `path`; returns the number of tokens written."""
    n_tokens = 0
    with open(path, "wb") as f:
        for ids in ids_chunks:
            f.write(ids.tobytes())
            n_tokens += len(ids)
        f.flush()
        os.fsync(f.fileno())
    return n_tokens


def _split_stream(stream: Path, n_train: int, val_path: Path, dtype: np.dtype) -> None:
    """Moves the tokens after the first `n_train` of `stream` into `val_path`."""
    with open(stream, "r+b") as src, open(val_path, "wb") as dst:
        src.seek(n_train * dtype.itemsize)
        shutil.copyfileobj(src, dst, CHUNK_BYTES)
        dst.flush()
        os.fsync(dst.fileno())
        src.truncate(n_train * dtype.itemsize)
        src.flush()
        os.fsync(src.fileno())


def _write_file(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_destinations(out: Path) -> None:
    """Each file of the dataset can be renamed into place, and .prepare-tmp made: a folder (a
    FIFO) at one of their names stopped the renames halfway, the earlier meta.json already
    gone, or prepare before it began. A link to a file is fine (a rename replaces the link,
    and DVC or git-annex leave datasets as links)."""
    wanted = {**{name: (stat.S_IFREG, f"its {name}") for name in DATASET_FILES},
              PREPARE_TMP: (stat.S_IFDIR, "the new dataset first")}
    for name, (kind, what) in wanted.items():
        try:
            mode = (os.lstat if name == PREPARE_TMP else os.stat)(out / name).st_mode
        except FileNotFoundError:
            continue
        except OSError as e:
            raise UserError(f"cannot use {out / name}: {e.strerror}") from None
        if stat.S_IFMT(mode) != kind:
            raise UserError(f"{out / name} is {_file_kind(mode)}, not {_file_kind(kind)}: "
                            f"prepare writes {what} there; move it away")


def _file_kind(mode: int) -> str:
    kinds = {stat.S_IFREG: "a regular file", stat.S_IFDIR: "a folder",
             stat.S_IFLNK: "a symbolic link", stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket"}
    return kinds.get(stat.S_IFMT(mode), "a device")


def _publish(tmp: Path, out: Path) -> None:
    """Renames the new files into DATADIR, meta.json last: at every moment the folder either
    holds a complete dataset or lacks meta.json, which readers refuse."""
    _check_destinations(out)  # again: the build took minutes
    (out / META_FILE).unlink(missing_ok=True)
    _fsync_dir(out)
    for name in (TRAIN_FILE, VAL_FILE, TOKENIZER_FILE):
        os.replace(tmp / name, out / name)
    _fsync_dir(out)
    os.replace(tmp / META_FILE, out / META_FILE)
    _fsync_dir(out)


def _require_own_folder(out: Path) -> None:
    """DATADIR is new, empty, or one that prepare wrote: with a meta.json of its own, or
    nothing but its files and its .lock (left half-written by a crash). Any other folder's
    train.bin or val.bin (nanoGPT's, say) would be overwritten."""
    if not out.is_dir():
        return
    entries = sorted(os.listdir(out))
    ours = {*DATASET_FILES, LOCK_FILE, PREPARE_TMP}
    if not entries or (LOCK_FILE in entries and ours.issuperset(entries)):
        return
    try:
        read_meta(out)
    except UserError:
        other = next((name for name in entries if name not in ours), entries[0])
        raise UserError(f"--out={out} holds files that prepare did not write (such as "
                        f"{other!r}), where it would write {', '.join(DATASET_FILES)} "
                        f"over any of the same name: give a new or empty folder") from None


def prepare(inputs: Sequence[str], out: str | Path, tokenizer: str = "char",
            vocab_size: int | None = None, val_fraction: float = 0.1,
            log: Callable[[str], None] = cli.print_now) -> bool:
    """Writes DATADIR `out` from the text of `inputs`; False (and nothing written) when it
    already holds exactly this dataset."""
    if tokenizer not in ("char", "bpe"):
        raise UserError(f"--tokenizer must be char or bpe, got {tokenizer!r}")
    if not 0 < val_fraction < 1:
        raise UserError(f"--val_fraction must be in (0, 1), got {val_fraction}")
    if tokenizer == "char" and vocab_size is not None:
        raise UserError("--vocab_size is for --tokenizer=bpe: a character vocabulary is the "
                        "characters of the inputs")
    if tokenizer == "bpe":
        vocab_size = DEFAULT_BPE_VOCAB if vocab_size is None else vocab_size
        if vocab_size < BYTE_SYMBOLS:
            raise UserError(f"--vocab_size must be at least {BYTE_SYMBOLS} for a byte-level "
                            f"BPE (one symbol per byte value), got {vocab_size}")
        if vocab_size > MAX_BPE_VOCAB:
            raise UserError(f"--vocab_size must be at most {MAX_BPE_VOCAB:,} (2^20: the "
                            f"largest language-model vocabularies hold about 256k), got "
                            f"{vocab_size}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out={out} is a file, not a folder")
    paths = expand_inputs(inputs, out)
    if out.is_dir():
        _check_destinations(out)
    _require_own_folder(out)
    try:
        sizes = [os.path.getsize(p) for p in paths]
    except OSError as e:
        raise UserError(f"cannot read {e.filename}: {e.strerror}") from None
    if not any(sizes):
        raise UserError(f"the inputs hold no text: {', '.join(paths)} "
                        f"{'is' if len(paths) == 1 else 'are'} empty")
    settings = {"tokenizer": tokenizer, "requested_vocab_size": vocab_size,
                "val_fraction": val_fraction}
    if out.is_dir():  # what is up to date needs no writing: checked beside the runs that
        with DataDirLock(out, exclusive=False):  # read it (a read-only mount, too)
            if _up_to_date(out, paths, sizes, settings):
                log(f"{out} is up to date with these inputs and settings; nothing to do")
                return False
    created = next((p for p in (out, *out.parents) if p.parent.exists()), out)  # the first
    created = None if created.exists() else created  # folder made for it, removed on failure
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the folder {out}: {e.strerror}") from None
    with DataDirLock(out, exclusive=True):
        tmp = out / PREPARE_TMP
        shutil.rmtree(tmp, ignore_errors=True)  # left by an interrupted prepare
        tmp.mkdir()
        try:
            meta = _build(paths, sizes, settings, tmp, log)
            _publish(tmp, out)
        except BaseException as e:
            if created:  # a failed first prepare leaves no folder behind, nor its parents
                shutil.rmtree(created, ignore_errors=True)
            if isinstance(e, OSError) and e.filename is None and e.errno in DISK_ERRNOS:
                raise UserError(f"cannot write the dataset in --out={out}: {e.strerror} (the "
                                f"dataset there before, if any, is unchanged)") from None
            raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    log(f"wrote {out}: {meta['train_tokens']:,} train + {meta['val_tokens']:,} val tokens "
        f"({meta['dtype']}, {meta['tokenizer']} vocabulary of {meta['vocab_size']:,}) from "
        f"{len(paths)} file{'s' * (len(paths) != 1)}, {sum(sizes) / 1e6:,.1f} MB")
    return True


def _build(paths: list[str], sizes: list[int], settings: dict, tmp: Path,
           log: Callable[[str], None]) -> dict:
    """The two passes, written into `tmp`: tokenizer.json, train.bin, val.bin, meta.json."""
    total, kind = sum(sizes), settings["tokenizer"]
    first: list[Source] = []
    desc = "counting characters" if kind == "char" else "training BPE"
    with _timed_pass(total, f"1/2 {desc}", log) as bar:
        text = read_corpus(paths, first, bar)
        tok = char_vocabulary(text) if kind == "char" else _train_bpe_interruptibly(
            text, settings["requested_vocab_size"])
    dtype = token_dtype(tok.vocab_size)
    second: list[Source] = []
    with _timed_pass(total, "2/2 encoding", log) as bar:
        text = read_corpus(paths, second, bar)
        ids = char_ids(text, tok, dtype) if kind == "char" else bpe_ids(text, tok, dtype)
        n_tokens = _write_stream(tmp / STREAM_FILE, ids)
    if first != second:
        changed = next(a.path for a, b in zip(first, second, strict=True) if a != b)
        raise UserError(f"{changed} changed while it was being prepared; run prepare again")
    if n_tokens == 0:
        raise UserError("the inputs hold no text")
    # in decimal, as written: 1 - 0.3 in floats is below 0.7, one token short of (1 - f) n
    n_train = int((1 - Fraction(repr(settings["val_fraction"]))) * n_tokens)
    if not 0 < n_train < n_tokens:
        raise UserError(f"{n_tokens} tokens cannot be split with --val_fraction="
                        f"{settings['val_fraction']}: train or val would be empty")
    _split_stream(tmp / STREAM_FILE, n_train, tmp / VAL_FILE, dtype)
    os.replace(tmp / STREAM_FILE, tmp / TRAIN_FILE)
    _write_file(tmp / TOKENIZER_FILE, tok.to_json())
    meta = {"format_version": FORMAT_VERSION, **settings, "vocab_size": tok.vocab_size,
            "dtype": dtype.name, "train_tokens": n_train, "val_tokens": n_tokens - n_train,
            "sources": [dataclasses.asdict(s) for s in first], "outputs": _output_hashes(tmp)}
    _write_file(tmp / META_FILE, json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return meta


def _train_bpe_interruptibly(texts: Iterable[str], vocab_size: int) -> BPETokenizer:
    """train_bpe, `_interruptibly`; the trainer reads `texts` on threads of its own, and once
    a signal has ended the wait it reads no further."""
    abandoned = threading.Event()

    def until_abandoned() -> Iterator[str]:
        for text in texts:
            if abandoned.is_set():
                return
            yield text

    try:
        return _interruptibly(lambda: train_bpe(until_abandoned(), vocab_size))
    finally:
        abandoned.set()


def _interruptibly(call: Callable[[], T]) -> T:
    """`call()`, a long native call of the tokenizer, on a thread of its own while the main
    thread waits in short sleeps. No Python signal handler runs during a native call, so
    Ctrl-C or SIGTERM fell to the watch (stop.py) a second later, which ends the process
    without prepare's cleanup (a first prepare left its new folder behind); here the signal
    raises at once."""
    done: dict = {}

    def run() -> None:
        try:
            done["result"] = call()
        except BaseException as e:  # raised again on the main thread
            done["error"] = e

    thread = threading.Thread(target=run, daemon=True, name="tokenizer-call")
    thread.start()
    while thread.is_alive():
        thread.join(POLL_SECONDS)
    if "error" in done:
        raise done["error"]
    return done["result"]


def _main(argv: list[str]) -> None:
    F = FLAGS
    cli.parse_flags(argv, USAGE, FLAGS)
    cli.require_flags(FLAGS, ("input", "out"), USAGE)
    # ~ expanded as for every path flag (bash leaves it in --out=~/data)
    prepare([str(user_path(p)) for p in F.input], user_path(F.out), F.tokenizer,
            F.vocab_size, F.val_fraction)


def main() -> None:
    cli.run(lambda: _main(sys.argv), out_of_memory="out of memory while preparing: free memory "
            "for it (prepare reads its input in chunks; a BPE's training holds the counts of "
            "the text's words)")


if __name__ == "__main__":
    main()
