"""Source → target pairs for an encoder–decoder: a TSV loader, a vocabulary, padded arrays.

Legend: N pairs, S = max_source_len, T = max_target_len + 1 (BOS or EOS added), B batch rows,
K batches. Like dataset.py, every batch is a pure function of (seed, stream, index), so a
resumed run sees the batches an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

import numpy as np

from gpt_jax.errors import UserError
from gpt_jax.tokenizer import check_chars
from gpt_jax.user_files import checked_input, text_line

MEMORY_PER_PAIR_BYTE = 40  # two Python strings per line, their arrays, the vocabulary


def _check_line(where: str, line: str, max_source_len: int,
                max_target_len: int) -> tuple[str, str]:
    tabs = line.count("\t")
    if "\r" in line and tabs != 1:  # lines ended by \r alone (old Mac files): one line here
        raise UserError(f"{where}: carriage returns (\\r) and {tabs} tabs in one line: are "
                        f"its lines ended by \\r alone? They must end with \\n (or \\r\\n): "
                        f"convert the file's line endings")
    if tabs == 0:
        raise UserError(f"{where}: no tab; expected source<TAB>target")
    if tabs > 1:
        raise UserError(f"{where}: {tabs} tabs; expected exactly one, between source and target")
    source, target = line.split("\t")
    for side, text, limit in (("source", source, max_source_len),
                              ("target", target, max_target_len)):
        if not text:
            raise UserError(f"{where}: empty {side}; expected source<TAB>target")
        if "\ufeff" in text:  # the first line's is dropped: files joined one after another?
            raise UserError(f"{where}: the {side} holds a byte-order mark (U+FEFF) inside the "
                            f"file: were files joined together? Remove it")
        if len(f"{text}x".splitlines()) > 1:  # one pair, one line, also as the sampler prints
            breaker = next(c for c in text if len(f"{c}x".splitlines()) > 1)
            raise UserError(f"{where}: the {side} holds {breaker!r} (U+{ord(breaker):04X}), "
                            f"which ends a line: a pair is one line, and so is each target the "
                            f"sampler prints; remove it")
        if len(text) > limit:
            raise UserError(f"{where}: the {side} has {len(text)} characters, more than "
                            f"data.max_{side}_len = {limit} (raise --config.data.max_{side}_len "
                            f"or shorten the line)")
    return source, target


def load_pairs(path: str | Path, max_source_len: int,
               max_target_len: int) -> list[tuple[str, str]]:
    """(source, target) pairs of a UTF-8 `source<TAB>target` file, read line by line; a bad
    line is refused with its file and line number. A BOM, CRLF and blank trailing lines pass."""
    p = checked_input(path, "pair file", MEMORY_PER_PAIR_BYTE)
    pairs: list[tuple[str, str]] = []
    blank = 0  # the first blank line since the last pair: an error if a pair follows it
    try:
        with open(p, "rb") as f:
            for number, raw in enumerate(f, start=1):
                where = f"{p}:{number}"
                line = text_line(raw, number, where)
                if not line:
                    blank = blank or number
                    continue
                if blank:
                    raise UserError(f"{p}:{blank}: a blank line "
                                    f"{'between pairs' if pairs else 'before the first pair'}; "
                                    f"expected source<TAB>target")
                pairs.append(_check_line(where, line, max_source_len, max_target_len))
    except OSError as e:
        raise UserError(f"cannot read pair file {p}: {e.strerror}") from None
    if not pairs:
        raise UserError(f"pair file {p} is empty: expected source<TAB>target lines")
    return pairs


@dataclasses.dataclass(frozen=True)
class PairVocab:
    """One character vocabulary for sources and targets, after three reserved ids."""

    chars: tuple[str, ...]  # sorted, unique, single characters; ids 3, 4, ...
    stoi: dict[str, int] = dataclasses.field(init=False, repr=False, compare=False)
    PAD: ClassVar[int] = 0
    BOS: ClassVar[int] = 1  # the decoder's first input
    EOS: ClassVar[int] = 2  # the decoder's last output: the target is complete
    SPECIALS: ClassVar[tuple[str, ...]] = ("<pad>", "<bos>", "<eos>")

    def __post_init__(self):
        if not self.chars:
            raise UserError("the pair vocabulary is empty: the pairs have no characters")
        check_chars(self.chars)
        stoi = {c: i for i, c in enumerate(self.chars, start=len(self.SPECIALS))}
        object.__setattr__(self, "stoi", stoi)  # derived once; the dataclass stays frozen

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, str]]) -> PairVocab:
        """Every character of every source and target."""
        return cls(tuple(sorted({c for pair in pairs for text in pair for c in text})))

    kind: ClassVar[str] = "pairs"

    @property
    def size(self) -> int:
        return len(self.SPECIALS) + len(self.chars)

    @property
    def vocab_size(self) -> int:
        return self.size

    def _ids(self, text: str) -> list[int]:
        try:
            return [self.stoi[c] for c in text]
        except KeyError as e:
            raise UserError(f"character {e.args[0]!r} is not in the pair vocabulary "
                            f"of {len(self.chars)} characters") from None

    def encode_source(self, text: str) -> np.ndarray:
        """Ids of the characters of `text`, (len,) int32; the encoder needs no BOS or EOS."""
        return np.array(self._ids(text), dtype=np.int32)

    def encode_target(self, text: str) -> np.ndarray:
        """Ids of `text` then EOS, (len + 1,) int32: what the decoder must produce."""
        return np.array([*self._ids(text), self.EOS], dtype=np.int32)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids` up to the first EOS; PAD and BOS are skipped."""
        out = []
        for i in map(int, ids):
            if i == self.EOS:
                break
            if i >= len(self.SPECIALS):
                out.append(self.chars[i - len(self.SPECIALS)])
        return "".join(out)

    def to_json(self) -> str:
        """Plain JSON for a run folder's vocab file (never pickle)."""
        return json.dumps({"specials": list(self.SPECIALS), "chars": list(self.chars)},
                          ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> PairVocab:
        """The vocabulary `to_json` wrote; anything else is refused in one line."""
        try:
            stored = json.loads(text)
            specials, chars = stored["specials"], stored["chars"]
        except (ValueError, KeyError, TypeError) as e:
            raise UserError(f"cannot read the pair vocabulary: {e}") from None
        if specials != list(cls.SPECIALS):
            raise UserError(f"not a pair vocabulary: expected specials {list(cls.SPECIALS)}")
        check_chars(chars)
        return cls(tuple(chars))


@dataclasses.dataclass(frozen=True)
class PairArrays:
    """Pairs as padded int32 arrays (PAD = 0), the inputs and targets of teacher forcing."""

    # Shape suffixes in the names (see the legend); hence the N815 exemptions.
    source_NxS: np.ndarray  # noqa: N815 (source ids, left-aligned)
    source_len_N: np.ndarray  # noqa: N815 (characters in each source)
    target_in_NxT: np.ndarray  # noqa: N815 (BOS, then the target: the decoder's inputs)
    target_out_NxT: np.ndarray  # noqa: N815 (the target, then EOS: the next-token targets)

    def __len__(self) -> int:
        return len(self.source_len_N)

    def take(self, index_B: np.ndarray) -> PairArrays:
        """The rows `index_B`, e.g. one batch of `pair_batch_indices`."""
        return PairArrays(*(getattr(self, f.name)[index_B] for f in dataclasses.fields(self)))


def encode_pairs(pairs: list[tuple[str, str]], vocab: PairVocab, max_source_len: int,
                 max_target_len: int) -> PairArrays:
    """Every pair encoded and padded to (S,) and (T,) = (max_source_len, max_target_len + 1)."""
    N, S, T = len(pairs), max_source_len, max_target_len + 1
    source_NxS = np.zeros((N, S), np.int32)
    source_len_N = np.zeros((N,), np.int32)
    target_in_NxT = np.zeros((N, T), np.int32)
    target_out_NxT = np.zeros((N, T), np.int32)
    for n, (source, target) in enumerate(pairs):
        for side, text, limit in (("source", source, S), ("target", target, max_target_len)):
            if len(text) > limit:
                raise UserError(f"the {side} of pair {n + 1} has {len(text)} characters, more "
                                f"than data.max_{side}_len = {limit}")
        ids = vocab.encode_source(source)
        source_NxS[n, :len(ids)] = ids
        source_len_N[n] = len(ids)
        out = vocab.encode_target(target)
        target_out_NxT[n, :len(out)] = out
        target_in_NxT[n, 0] = vocab.BOS
        target_in_NxT[n, 1:len(out)] = out[:-1]
    return PairArrays(source_NxS, source_len_N, target_in_NxT, target_out_NxT)


def pair_batch_indices(n_pairs: int, batch_size: int, seed: int, stream: int,
                       index: int) -> np.ndarray:
    """Pair indices (batch_size,) of global batch `index` of a stream; the same everywhere, so a
    process takes its rows by slicing and a resumed run replays nothing."""
    rng = np.random.default_rng((seed, stream, index))
    return rng.integers(0, n_pairs, size=batch_size)


def eval_batches(n_pairs: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pair once, in order: indices and mask, both (K, batch_size); the last batch is
    padded with index 0 and mask False, so that each held-out pair counts exactly once."""
    K = -(-n_pairs // batch_size)
    flat = np.arange(K * batch_size)
    mask_KxB = (flat < n_pairs).reshape(K, batch_size)
    index_KxB = np.where(mask_KxB, flat.reshape(K, batch_size), 0)
    return index_KxB, mask_KxB
