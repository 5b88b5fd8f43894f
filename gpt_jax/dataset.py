"""Text corpus → token stream → random (input, target) blocks, keyed by (seed, step).

Every batch is a pure function of (seed, split, step): no global RNG state, so a resumed
run sees exactly the batches an uninterrupted one would, on any device layout.
"""

from __future__ import annotations

import dataclasses
import os
from importlib import resources
from pathlib import Path

import numpy as np

from gpt_jax.errors import UserError
from gpt_jax.token_files import dataset_holding
from gpt_jax.tokenizer import CharTokenizer
from gpt_jax.user_files import checked_input, user_path

TRAIN, VAL = 0, 1
# Batches are drawn from independent random streams: stream 0 is training, keyed by step;
# streams 1 + split hold the fixed evaluation batches, keyed by their index.
TRAIN_STREAM = 0
TRAIN_FRACTION = 0.9  # the lecture's 90/10 split of the token stream


def default_corpus_path() -> Path:
    """tiny Shakespeare, shipped inside the package."""
    return Path(str(resources.files("gpt_jax") / "data" / "tinyshakespeare.txt"))


# Bytes of memory per byte of text while it is loaded: the bytes, the decoded str (up to 4
# bytes a character), and the int32 token stream.
MEMORY_PER_TEXT_BYTE = 9


def load_text(path: str) -> str:
    """Reads a UTF-8 corpus ('' means tiny Shakespeare), with one clear error per failure.
    A byte-order mark at its start is not text, and is dropped."""
    dataset = dataset_holding(user_path(path)) if path else None
    if dataset is not None:
        raise UserError(f"data file {path} is a file of the prepared dataset {dataset}: train "
                        f"on the folder (--config.data.path={dataset})")
    try:
        p = checked_input(path or default_corpus_path(), "data file", MEMORY_PER_TEXT_BYTE)
    except UserError as e:
        hint = ": prepare it for streaming with python -m gpt_jax.prepare and pass the " \
            "prepared folder" if "of memory" in str(e) else ""
        raise UserError(f"{e}{hint}") from None
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read data file {p}: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"data file {p} is not UTF-8 text (bad byte at offset {e.start})") from None
    text = text.removeprefix("\ufeff")
    if not text:
        raise UserError(f"data file {p} is empty")
    return text


@dataclasses.dataclass(frozen=True)
class Corpus:
    """The tokenized corpus split into a train and a val stream."""

    tokenizer: CharTokenizer
    train: np.ndarray  # (N_train,) int32
    val: np.ndarray  # (N_val,) int32

    @classmethod
    def from_text(cls, text: str, tokenizer: CharTokenizer | None = None) -> Corpus:
        tokenizer = tokenizer or CharTokenizer.from_text(text)
        data = tokenizer.encode(text)
        n = int(TRAIN_FRACTION * len(data))
        return cls(tokenizer, data[:n], data[n:])

    def split(self, split: int) -> np.ndarray:
        return self.train if split == TRAIN else self.val

    def check_block_size(self, block_size: int) -> None:
        """Both splits must hold at least one (block_size + 1)-token window."""
        total = len(self.train) + len(self.val)
        if total < block_size + 1:
            raise UserError(f"the corpus has {total} tokens, fewer than block_size + 1 = "
                            f"{block_size + 1}: use a longer text or a smaller "
                            f"--config.model.block_size")
        for name, data in (("train", self.train), ("val", self.val)):
            if len(data) < block_size + 1:
                raise UserError(
                    f"the {name} split has {len(data)} tokens, fewer than block_size + 1 = "
                    f"{block_size + 1}: use a longer text or a smaller --config.model.block_size")


def eval_stream(split: int) -> int:
    return 1 + split


def batch_offsets(n_tokens: int, block_size: int, batch_size: int,
                  seed: int, stream: int, index: int) -> np.ndarray:
    """Start offsets (batch_size,) of global batch `index` of a stream; the same everywhere."""
    rng = np.random.default_rng((seed, stream, index))
    return rng.integers(0, n_tokens - block_size, size=batch_size)


def get_batch(data: np.ndarray, block_size: int, batch_size: int, seed: int, stream: int,
              index: int, rows: slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and next-token targets, both (rows, block_size), of global batch `index`.

    `rows` selects this process's share; the offsets are drawn for the whole global batch so
    that the data order does not depend on how many processes share it.
    """
    starts = batch_offsets(len(data), block_size, batch_size, seed, stream, index)[rows]
    window_RxT1 = read_windows(data, starts, block_size + 1)
    return window_RxT1[:, :-1], window_RxT1[:, 1:]


def read_windows(tokens_N: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """tokens_N[starts[..., None] + arange(length)]: the windows of `length` tokens at `starts`.

    A memory-mapped token file is read with one pread per window instead: on recent kernels a
    page fault maps the whole page-cache folio around it (up to megabytes), so random windows
    would count most of a large corpus in the process's resident memory.
    """
    if not isinstance(tokens_N, np.memmap):
        return tokens_N[starts[..., None] + np.arange(length)]
    itemsize = tokens_N.dtype.itemsize
    nbytes = length * itemsize
    source = getattr(tokens_N, "source", None)  # the file it was opened from (token_files.py)
    fd = source.fileno() if source is not None else os.open(tokens_N.filename, os.O_RDONLY)
    try:
        chunks = [os.pread(fd, nbytes, tokens_N.offset + int(start) * itemsize)
                  for start in starts.ravel()]
    finally:
        if source is None:
            os.close(fd)
    if any(len(chunk) != nbytes for chunk in chunks):
        raise UserError(f"{tokens_N.filename} became shorter while training: was it prepared "
                        f"again? Resume once the prepare has finished")
    windows = np.frombuffer(b"".join(chunks), tokens_N.dtype)
    return windows.reshape(*starts.shape, length)
