"""Tokenizers: characters (every distinct character of the corpus is one token), or a
byte-level BPE vocabulary trained on the corpus with Hugging Face `tokenizers`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from numpy.typing import DTypeLike
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from gpt_jax.errors import UserError

BYTE_SYMBOLS = 256  # a byte-level BPE vocabulary starts from one symbol per byte value
PIECE_CHARS = 1 << 15  # text is encoded in parallel pieces of about this many characters
FORCED_CUT_CHARS = 1 << 22  # text this long without a boundary is cut anyway, bounding memory
# The BPE trainer's time grows with the square of a word's length (each merge rescans the
# word), so a long run without a space (DNA, minified code, unspaced CJK) would take it
# minutes, and so would a long run of spaces or blank lines (GPT-2's pattern keeps one as one
# word: 400,000 spaces took 169 s). It learns from such runs cut into parts this long, which
# bounds that cost; ordinary text, whose words are far shorter, is learned from as it is.
LONGEST_TRAINING_WORD = 1 << 10
_LONG_RUN = re.compile(rf"\S{{{LONGEST_TRAINING_WORD + 1},}}|\s{{{LONGEST_TRAINING_WORD + 1},}}")

# Where text can be cut without changing its BPE tokens: before one space or newline that
# stands between two non-space characters. GPT-2's split pattern, which the byte-level
# pre-tokenizer applies, starts a new word there whatever follows, and no word ending before
# it depends on what comes after (its only look-ahead is at runs of whitespace). Python's
# whitespace includes all of Unicode's, so its \S is never whitespace to the pattern.
_PIECE_BOUNDARY = re.compile(r"(?<=\S)(?=[ \n]\S)")


def check_chars(chars) -> None:
    """Refuses a list that is not sorted, unique, single characters, naming the entry that is
    wrong: a character's id is its rank, so any other list gives ids no model was trained on."""
    if not isinstance(chars, (list, tuple)):
        raise UserError(f"'chars' must be a list of sorted, unique, single characters, not a "
                        f"{type(chars).__name__}")
    rule, seen = "'chars' must be sorted, unique, single characters", {}
    for i, c in enumerate(chars):
        if not isinstance(c, str) or len(c) != 1:
            raise UserError(f"{rule}: entry {i} is {json.dumps(c, ensure_ascii=False)}")
        if c in seen:
            raise UserError(f"{rule}: {c!r} is entry {seen[c]} and entry {i}")
        if i and c < chars[i - 1]:
            raise UserError(f"{rule}: {c!r} (entry {i}) comes after {chars[i - 1]!r}")
        seen[c] = i


class CharTokenizer:
    """Maps characters to ids by their rank in the sorted vocabulary (65 for tiny Shakespeare)."""

    kind = "char"

    def __init__(self, chars: list[str]):
        if not chars:
            raise UserError("the vocabulary is empty: the corpus has no characters")
        check_chars(chars)
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

    def to_json(self) -> str:
        """The tokenizer.json form, which says its kind (vocab.json keeps the legacy form)."""
        return json.dumps({"type": self.kind, "chars": self.chars}, ensure_ascii=False)

    def save(self, path: str | Path) -> None:
        """Writes the legacy {"chars": [...]} form that run folders' vocab.json holds."""
        Path(path).write_text(json.dumps({"chars": self.chars}, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | Path) -> CharTokenizer:
        try:
            return cls(json.loads(Path(path).read_text(encoding="utf-8"))["chars"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise UserError(f"cannot read the vocabulary {path}: {e}") from None


def _byte_of_symbol() -> dict[str, int]:
    """The byte-level alphabet's symbols (GPT-2's) back to their bytes: a byte that prints is its
    own symbol; the others, in order, take the characters from U+0100 up."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(BYTE_SYMBOLS) if b not in printable]
    return {chr(b): b for b in printable} | {chr(256 + n): b for n, b in enumerate(others)}


_BYTE_OF_SYMBOL = _byte_of_symbol()


class BPETokenizer:
    """A byte-level BPE vocabulary: any Unicode text encodes and decodes back exactly, seen in
    training or not, because every byte value is a symbol of its own."""

    kind = "bpe"

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, text: str) -> np.ndarray:
        """Ids of `text` as int32, the same as encoding it whole; pieces run in parallel."""
        return self.encode_pieces(split_pieces(text))

    def encode_pieces(self, pieces: list[str], dtype: DTypeLike = np.int32) -> np.ndarray:
        """Ids of the concatenated `pieces` (cut as split_pieces cuts), encoded in parallel."""
        encodings = self.tokenizer.encode_batch_fast(pieces)
        return np.concatenate([np.zeros(0, dtype)] + [np.array(e.ids, dtype) for e in encodings])

    def decode(self, ids) -> str:
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=False)

    def label(self, token_id: int) -> str:
        """One token's text for a picture; a token that is part of a character (a byte of an
        'é' or an emoji) as its bytes, `\\xc3`, which decoding alone would turn into '�'."""
        symbols = self.tokenizer.id_to_token(int(token_id))
        return bytes(_BYTE_OF_SYMBOL[c] for c in symbols).decode("utf-8", "backslashreplace")

    def to_json(self) -> str:
        return self.tokenizer.to_str()

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> BPETokenizer:
        tokenizer = load_tokenizer(path)
        if not isinstance(tokenizer, cls):
            raise UserError(f"{path} holds a {tokenizer.kind} tokenizer, not a BPE one")
        return tokenizer


def split_pieces(text: str, piece_chars: int = PIECE_CHARS) -> list[str]:
    """`text` cut into pieces of about `piece_chars` characters (one piece where it has no
    boundary), only where a cut leaves the BPE tokens as they are."""
    pieces, start = [], 0
    while len(text) - start > piece_chars:
        cut = _PIECE_BOUNDARY.search(text, start + piece_chars)
        if cut is None:
            break
        pieces.append(text[start:cut.start()])
        start = cut.start()
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def stream_pieces(texts: Iterable[str], piece_chars: int = PIECE_CHARS) -> Iterator[list[str]]:
    """The pieces of the concatenated `texts`, a list per text, cut only at boundaries, so
    encoding them gives the tokens of the whole stream. Text that runs on for more than
    FORCED_CUT_CHARS without a boundary is cut there all the same, to bound memory."""
    carry = ""
    for text in texts:
        pieces = split_pieces(carry + text, piece_chars)
        carry = pieces.pop() if pieces else ""
        if len(carry) > FORCED_CUT_CHARS:
            pieces.append(carry)
            carry = ""
        if pieces:
            yield pieces
    if carry:
        yield [carry]


def train_bpe(texts: Iterable[str], vocab_size: int) -> BPETokenizer:
    """Learns `vocab_size` byte-level BPE symbols (256 bytes + merges) from `texts`, offline.
    A corpus with fewer distinct pairs to merge gives a smaller vocabulary."""
    if vocab_size < BYTE_SYMBOLS:
        raise UserError(f"a byte-level BPE vocabulary needs at least {BYTE_SYMBOLS} symbols "
                        f"(one per byte), got vocab_size={vocab_size}")
    tokenizer = _byte_level_bpe()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    pieces = (part for batch in stream_pieces(texts) for piece in batch
              for part in _without_long_runs(piece))
    tokenizer.train_from_iterator(pieces, trainer=trainer)
    return BPETokenizer(tokenizer)


def _byte_level_bpe() -> Tokenizer:
    """An untrained byte-level BPE: bytes as symbols, GPT-2's pre-tokenizing regex, no prefix
    space, and the byte-level decoder back to text."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def _pipeline_damage(tokenizer: Tokenizer) -> str | None:
    """Which part of a tokenizer's pipeline is not train_bpe's, or None: an edited decoder,
    normalizer or pre-tokenizer loads without complaint and turns the text into other symbols
    (a null decoder printed 'Ġ' for every space)."""
    ours, theirs = (json.loads(t.to_str()) for t in (_byte_level_bpe(), tokenizer))
    for key in sorted(set(ours) | set(theirs)):
        if key == "model":
            mine = {k: v for k, v in ours["model"].items() if k not in ("vocab", "merges")}
            other = {k: v for k, v in (theirs.get("model") or {}).items()
                     if k not in ("vocab", "merges")}
            if mine != other:
                return "its BPE model's settings are not those prepare writes"
        elif key != "version" and ours.get(key) != theirs.get(key):
            return f"its {key} is {json.dumps(theirs.get(key))[:60]}, not the one prepare writes"
    return None


def _without_long_runs(piece: str) -> Iterator[str]:
    """`piece`, its runs of more than LONGEST_TRAINING_WORD characters without a space (or of
    nothing but spaces) given to the trainer in parts of at most that many."""
    start = 0
    for run in _LONG_RUN.finditer(piece):
        if run.start() > start:
            yield piece[start:run.start()]
        for cut in range(run.start(), run.end(), LONGEST_TRAINING_WORD):
            yield piece[cut:min(cut + LONGEST_TRAINING_WORD, run.end())]
        start = run.end()
    if start < len(piece):
        yield piece[start:]


def load_tokenizer(path: str | Path) -> CharTokenizer | BPETokenizer:
    """Reads a tokenizer.json of either kind, or a run folder's legacy vocab.json."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        spec = json.loads(text)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read the tokenizer {path}: {e}") from None
    if not isinstance(spec, dict):
        raise UserError(f"{path} is not a tokenizer file (a JSON object)")
    try:
        if "specials" in spec:  # the vocabulary of source → target pairs
            from gpt_jax.pairs import PairVocab

            return PairVocab.from_json(text)
        if spec.get("type", CharTokenizer.kind) == CharTokenizer.kind and "chars" in spec:
            return CharTokenizer(spec["chars"])
    except UserError as e:
        raise UserError(f"{path} is damaged: {e}") from None
    model, pre_tokenizer = spec.get("model"), spec.get("pre_tokenizer")
    if not (isinstance(model, dict) and model.get("type") == "BPE"
            and isinstance(pre_tokenizer, dict) and pre_tokenizer.get("type") == "ByteLevel"):
        raise UserError(f"{path} is neither a character vocabulary nor a byte-level BPE "
                        f"tokenizer")
    try:
        tokenizer = Tokenizer.from_str(text)
    except Exception as e:  # tokenizers raises plain Exceptions for malformed files
        raise UserError(f"cannot read the tokenizer {path}: {str(e).splitlines()[0]}") from None
    damage = _bpe_damage(tokenizer.get_vocab()) or _pipeline_damage(tokenizer)
    if damage:
        raise UserError(f"{path} is damaged: {damage}")
    return BPETokenizer(tokenizer)


def _bpe_damage(vocab: dict[str, int]) -> str | None:
    """What is wrong with a byte-level BPE's symbols, or None. An id past the embedding table
    would be read as garbage without a word, and a byte without its symbol would be dropped
    from the text it encodes."""
    if sorted(vocab.values()) != list(range(len(vocab))):
        return f"its {len(vocab):,} symbols are not numbered 0 to {len(vocab) - 1:,}"
    missing = [symbol for symbol in _BYTE_OF_SYMBOL if symbol not in vocab]
    if missing:
        return (f"{len(missing)} of the 256 byte values have no symbol (byte "
                f"{_BYTE_OF_SYMBOL[missing[0]]:#04x} first)")
    strange = next((symbol for symbol in vocab if not set(symbol) <= _BYTE_OF_SYMBOL.keys()),
                   None)
    if strange is not None:
        return f"the symbol {strange!r} is not made of byte-level characters"
    return None
