import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpt_jax.errors import UserError
from gpt_jax.tokenizer import CharTokenizer


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
