import json
import random
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpt_jax.errors import UserError
from gpt_jax.tokenizer import (
    BPETokenizer,
    CharTokenizer,
    load_tokenizer,
    split_pieces,
    stream_pieces,
    train_bpe,
)


def test_shakespeare_has_65_sorted_characters(tokenizer):
    assert tokenizer.vocab_size == 65
    assert tokenizer.chars == sorted(tokenizer.chars)


def test_round_trip(tokenizer):
    ids = tokenizer.encode("Hello")
    assert ids.tolist() == [tokenizer.stoi[c] for c in "Hello"]
    assert tokenizer.decode(ids) == "Hello"


def test_unknown_character_is_named(tokenizer):
    with pytest.raises(UserError, match="'é'"):
        tokenizer.encode("café")


def test_json_round_trip(tokenizer, tmp_path):
    tokenizer.save(tmp_path / "vocab.json")
    loaded = CharTokenizer.load(tmp_path / "vocab.json")
    assert loaded.chars == tokenizer.chars


def test_corrupt_vocab_file_is_a_user_error(tmp_path):
    (tmp_path / "vocab.json").write_text("{not json")
    with pytest.raises(UserError, match="cannot read the vocabulary"):
        CharTokenizer.load(tmp_path / "vocab.json")


VOCAB = "\n !',-.:;?abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ$&3"


@given(st.text(alphabet=VOCAB))
def test_any_string_over_the_vocabulary_round_trips(text):
    tok = CharTokenizer(sorted(set(VOCAB)))
    assert tok.decode(tok.encode(text)) == text


@given(st.text(min_size=1).filter(lambda s: any(c not in VOCAB for c in s)))
def test_any_string_outside_the_vocabulary_is_rejected(text):
    tok = CharTokenizer(sorted(set(VOCAB)))
    bad = next(c for c in text if c not in VOCAB)
    with pytest.raises(UserError) as excinfo:
        tok.encode(text)
    assert repr(bad) in str(excinfo.value)


@settings(max_examples=40, deadline=None)
@given(st.text())
def test_the_char_tokenizer_of_any_unicode_text_round_trips_it(text):
    tok = CharTokenizer.from_text(text + "a")
    assert tok.decode(tok.encode(text)) == text


def test_tokenizer_json_says_char_and_legacy_vocab_json_still_loads(tokenizer, tmp_path):
    (tmp_path / "tokenizer.json").write_text(tokenizer.to_json())
    tokenizer.save(tmp_path / "vocab.json")
    assert json.loads((tmp_path / "tokenizer.json").read_text())["type"] == "char"
    assert json.loads((tmp_path / "vocab.json").read_text()) == {"chars": tokenizer.chars}
    for name in ("tokenizer.json", "vocab.json"):
        loaded = load_tokenizer(tmp_path / name)
        assert loaded.kind == "char" and loaded.chars == tokenizer.chars


# Whitespace of every kind around words: where cutting text could change its BPE tokens.
TRICKY = list(" \n\t\r\x0b\x0c\x1c\x85\xa0\u2000\u2028\u3000\u180e\u200b") + [
    "a", "Z", "9", "'", "s", "t", "ll", ".", "!", "é", "漢", "😀", "the", "\n\n"]


@pytest.fixture(scope="module")
def bpe(shakespeare) -> BPETokenizer:
    """Trained once on 100 kB of Shakespeare and some TRICKY text, so that it merges runs of
    whitespace too; most text below it never saw."""
    tricky = "".join(random.Random(0).choices(TRICKY, k=20_000))
    return train_bpe([shakespeare[:100_000], tricky], vocab_size=400)


@settings(max_examples=50, deadline=None)
@given(st.text())
def test_bpe_round_trips_any_unicode_text_it_was_not_trained_on(bpe, text):
    ids = bpe.encode(text)
    assert ids.dtype == np.int32 and ((0 <= ids) & (ids < bpe.vocab_size)).all()
    assert bpe.decode(ids) == text




@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.lists(st.sampled_from(TRICKY), max_size=20).map("".join),
                          st.text(max_size=8)), max_size=6), st.integers(1, 8))
def test_bpe_encoding_in_pieces_equals_encoding_the_whole_text(bpe, texts, piece_chars):
    whole = "".join(texts)
    expected = bpe.tokenizer.encode(whole).ids
    pieces = split_pieces(whole, piece_chars)
    assert "".join(pieces) == whole
    assert bpe.encode_pieces(pieces).tolist() == expected
    streamed = [piece for batch in stream_pieces(texts, piece_chars) for piece in batch]
    assert "".join(streamed) == whole
    assert bpe.encode_pieces(streamed).tolist() == expected


def test_bpe_learns_its_vocabulary_and_round_trips_through_json(bpe, shakespeare, tmp_path):
    assert bpe.kind == "bpe" and bpe.vocab_size == 400
    unseen = shakespeare[-2000:]
    assert len(bpe.encode(unseen)) < 0.75 * len(unseen)  # merges learned, not bytes alone
    bpe.save(tmp_path / "tokenizer.json")
    for loaded in (BPETokenizer.load(tmp_path / "tokenizer.json"),
                   load_tokenizer(tmp_path / "tokenizer.json")):
        assert isinstance(loaded, BPETokenizer) and loaded.to_json() == bpe.to_json()
        assert loaded.encode(unseen).tolist() == bpe.encode(unseen).tolist()


def test_bpe_learns_long_runs_of_one_kind_in_parts_and_ordinary_text_whole(shakespeare):
    """The trainer's time grows with the square of a word's length: a run of characters
    without a space, or of whitespace, is learned from in parts of at most
    LONGEST_TRAINING_WORD; text whose words are shorter is given as it is, so its vocabulary
    does not change."""
    from gpt_jax import tokenizer as module

    longest = module.LONGEST_TRAINING_WORD
    piece = "x " + "acgt" * longest + " tail"
    parts = list(module._without_long_runs(piece))
    assert "".join(parts) == piece
    assert [len(p) for p in parts] == [2, longest, longest, longest, longest, 5]
    text = shakespeare[:20_000]
    assert list(module._without_long_runs(text)) == [text]
    rng = random.Random(0)
    dna = "".join(rng.choice("acgt") for _ in range(200_000))
    bpe = train_bpe([dna], vocab_size=300)
    assert bpe.vocab_size == 300 and bpe.decode(bpe.encode(dna)) == dna
    # so is a run of whitespace, which GPT-2's pattern keeps whole (400,000 spaces: 169 s)
    blank = "word " * 10 + " " * 3 * longest + "\n" * 2 * longest + "end"
    parts = list(module._without_long_runs(blank))
    assert "".join(parts) == blank and max(map(len, parts)) <= longest
    spaced = "word " * 1000 + " " * 400_000 + "end\n"
    start = time.perf_counter()
    bpe = train_bpe([spaced], vocab_size=300)
    assert bpe.decode(bpe.encode(spaced)) == spaced
    print(f"400,000 spaces learned from in {time.perf_counter() - start:.1f} s")


def test_bpe_needs_a_symbol_per_byte():
    with pytest.raises(UserError, match="at least 256 symbols"):
        train_bpe(["some text"], vocab_size=255)


def test_a_char_file_is_not_a_bpe_tokenizer(tokenizer, tmp_path):
    (tmp_path / "tokenizer.json").write_text(tokenizer.to_json())
    with pytest.raises(UserError, match="holds a char tokenizer, not a BPE one"):
        BPETokenizer.load(tmp_path / "tokenizer.json")


@pytest.mark.parametrize("content, message", [
    ("{not json", "cannot read the tokenizer"),
    ("[1, 2]", "not a tokenizer file"),
    ('{"type": "char", "chars": "abc"}', "must be a list"),
    ('{"chars": ["b", "a"]}', "sorted, unique"),
    ('{"model": {"type": "WordPiece"}}', "neither a character vocabulary nor"),
    ('{"model": {"type": "BPE"}, "pre_tokenizer": {"type": "ByteLevel"}}',
     "cannot read the tokenizer"),
])
def test_a_corrupt_tokenizer_file_is_a_one_line_user_error(tmp_path, content, message):
    (tmp_path / "tokenizer.json").write_text(content)
    with pytest.raises(UserError, match=message) as e:
        load_tokenizer(tmp_path / "tokenizer.json")
    assert "\n" not in str(e.value)


def test_every_bpe_token_has_a_label_of_its_own_and_parts_of_characters_show_their_bytes():
    """inspect's pictures label each token: decoded alone, every byte of an 'é' or an emoji was
    the same '\ufffd', so their bars and rows could not be told apart."""
    from tokenizers import pre_tokenizers

    from gpt_jax.tokenizer import _BYTE_OF_SYMBOL

    assert set(_BYTE_OF_SYMBOL) == set(pre_tokenizers.ByteLevel.alphabet())
    assert sorted(_BYTE_OF_SYMBOL.values()) == list(range(256))
    bpe = train_bpe(["déjà vu 🙂 " * 20], 300)
    labels = [bpe.label(i) for i in range(bpe.vocab_size)]
    assert len(set(labels)) == bpe.vocab_size
    for i, label in enumerate(labels):
        whole = bpe.decode([i])
        assert label == whole if "\ufffd" not in whole else "\\x" in label
    assert labels.count("\\xc3") == labels.count("\\xa9") == 1  # é's two bytes, apart
    assert "".join(bpe.label(i) for i in bpe.encode("é")) in ("é", "\\xc3\\xa9")


@pytest.mark.parametrize("damage, message", [
    # the same number of symbols, one id past the table: sampled as '!!!!', inspect's traceback
    (lambda vocab: vocab.update({"Ġt": 5000}), r"its 400 symbols are not numbered 0 to 399"),
    # a byte's symbol renamed: text holding that byte was encoded without it, silently
    (lambda vocab: vocab.update({"QQQ": vocab.pop("Ā")}),
     r"1 of the 256 byte values have no symbol \(byte 0x00 first\)"),
])
def test_a_bpe_tokenizer_with_damaged_symbols_is_refused(bpe, tmp_path, damage, message):
    spec = json.loads(bpe.to_json())
    damage(spec["model"]["vocab"])
    (tmp_path / "vocab.json").write_text(json.dumps(spec))
    with pytest.raises(UserError, match=rf"vocab.json is damaged: {message}$"):
        load_tokenizer(tmp_path / "vocab.json")


@pytest.mark.parametrize("part, value, message", [
    # a null decoder printed "Ġ" for every space, and exit 0
    ("decoder", None, r"its decoder is null, not the one prepare writes"),
    ("normalizer", {"type": "Lowercase"},
     r'its normalizer is \{"type": "Lowercase"\}, not the one prepare writes'),
    ("model", "dropout", r"its BPE model's settings are not those prepare writes"),
])
def test_a_bpe_tokenizer_with_another_pipeline_is_refused(bpe, tmp_path, part, value, message):
    spec = json.loads(bpe.to_json())
    if part == "model":
        spec["model"]["dropout"] = 0.5  # a sampled segmentation: other ids for the same text
    else:
        spec[part] = value
    (tmp_path / "vocab.json").write_text(json.dumps(spec))
    with pytest.raises(UserError, match=rf"vocab.json is damaged: {message}$"):
        load_tokenizer(tmp_path / "vocab.json")
