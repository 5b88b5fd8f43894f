"""Character tokenizer: every distinct character of the corpus is one token."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gpt_jax.errors import UserError


class CharTokenizer:
    """Maps characters to ids by their rank in the sorted vocabulary (65 for tiny Shakespeare)."""

    def __init__(self, chars: list[str]):
        if not chars:
            raise UserError("the vocabulary is empty: the corpus has no characters")
        if sorted(set(chars)) != list(chars) or any(len(c) != 1 for c in chars):
            raise UserError("a vocabulary must be sorted, unique, single characters")
        self.chars = list(chars)
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """Ids of `text` as int32; names the first character outside the vocabulary."""
        try:
            return np.fromiter((self.stoi[c] for c in text), dtype=np.int32, count=len(text))
        except KeyError as e:
            raise UserError(f"character {e.args[0]!r} is not in the vocabulary "
                            f"of {self.vocab_size} characters") from None

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"chars": self.chars}, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | Path) -> CharTokenizer:
        try:
            return cls(json.loads(Path(path).read_text(encoding="utf-8"))["chars"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise UserError(f"cannot read the vocabulary {path}: {e}") from None
