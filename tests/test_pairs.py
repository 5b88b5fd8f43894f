"""The dates task and the pair loader: shipped files, held-out split, vocabulary, batches."""

import datetime
import re

import numpy as np
import pytest

from conftest import run_python
from gpt_jax.errors import UserError
from gpt_jax.pairs import (
    PairVocab,
    encode_pairs,
    eval_batches,
    load_pairs,
    pair_batch_indices,
)
from gpt_jax.tasks import dates

MAX_SOURCE, MAX_TARGET = 29, 10  # the longest source: "Wednesday, September 27, 2023"


@pytest.fixture(scope="module")
def shipped():
    d = dates.shipped_dir()
    return (load_pairs(d / dates.TRAIN_FILE, MAX_SOURCE, MAX_TARGET),
            load_pairs(d / dates.VAL_FILE, MAX_SOURCE, MAX_TARGET))


def test_command_regenerates_the_shipped_files_byte_for_byte(tmp_path):
    """In ~/dates as --out=~/dates says, as every path flag reads it (it made a folder named
    '~' in the current one)."""
    result = run_python(["-m", "gpt_jax.tasks.dates", "--out=~/dates"],
                        env={"PYTHONHASHSEED": "123", "LC_ALL": "C", "HOME": str(tmp_path)},
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for name in (dates.TRAIN_FILE, dates.VAL_FILE):
        assert (tmp_path / "dates" / name).read_bytes() == (
            dates.shipped_dir() / name).read_bytes()
    assert not (tmp_path / "~").exists()


def test_generator_is_deterministic():
    assert dates.generate(seed=5, n_train=300, n_val=50) == dates.generate(5, 300, 50)
    assert dates.generate(seed=5, n_train=300, n_val=50) != dates.generate(6, 300, 50)


def test_command_without_out_is_one_line_error():
    result = run_python(["-m", "gpt_jax.tasks.dates"])
    assert result.returncode == 2
    assert result.stderr == ("error: --out is missing; usage: python -m gpt_jax.tasks.dates "
                             "--out=DIR\n")


def test_held_out_dates_never_appear_in_training(shipped):
    train, val = shipped
    assert (len(train), len(val)) == (40_000, 2_000)
    train_targets, val_targets = {t for _, t in train}, {t for _, t in val}
    assert len(val_targets) == 2_000 and not train_targets & val_targets


# An independent reading of every spelling: strptime's English (C locale) names, after
# dropping "the", "of" and ordinal suffixes. Every format that parses must give one date.
STRPTIME = ("%d %B %Y", "%B %d, %Y", "%b %d %Y", "%d %b %Y", "%d %B, %Y", "%A, %d %B %Y",
            "%A, %B %d, %Y", "%a %d %b %Y", "%d-%b-%Y", "%d.%m.%Y", "%Y/%m/%d")


def _read_date(source: str) -> datetime.date:
    text = re.sub(r"^the (\d+)(st|nd|rd|th) of ", r"\1 ", source)
    text = re.sub(r"\b(\d+)(st|nd|rd|th)\b", r"\1", text)
    readings = set()
    for fmt in STRPTIME:
        try:
            readings.add(datetime.datetime.strptime(text, fmt).date())
        except ValueError:
            pass
    assert len(readings) == 1, (source, readings)
    return readings.pop()


def test_every_held_out_source_and_every_20th_training_source_means_its_target(shipped):
    """A sample of the training pairs (all 40,000 take 7 s of eleven strptime formats each);
    the generator writes every pair with the same code."""
    train, val = shipped
    for source, target in val + train[::20]:
        day = _read_date(source)
        assert day.isoformat() == target, source
        assert datetime.date(1900, 1, 1) <= day <= datetime.date(2099, 12, 31)
        for name in re.findall(r"\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*\b", source):
            assert day.strftime("%A").startswith(name), source


SPELLINGS = {  # the formats a reader meets, each with an example
    "7 April 2023": r"^\d{1,2} [A-Z][a-z]+ \d{4}$",
    "April 7, 2023": r"^[A-Z][a-z]+ \d{1,2}, \d{4}$",
    "Apr 7 2023": r"^[A-Z][a-z]{2} \d{1,2} \d{4}$",
    "the 7th of April, 2023": r"^the \d{1,2}(st|nd|rd|th) of [A-Z][a-z]+, \d{4}$",
    "April 7th, 2023": r"^[A-Z][a-z]+ \d{1,2}(st|nd|rd|th), \d{4}$",
    "7th April 2023": r"^\d{1,2}(st|nd|rd|th) [A-Z][a-z]+ \d{4}$",
    "Friday, 7 April 2023": r"^[A-Z][a-z]+day, \d{1,2} [A-Z][a-z]+ \d{4}$",
    "Friday, April 7, 2023": r"^[A-Z][a-z]+day, [A-Z][a-z]+ \d{1,2}, \d{4}$",
    "Fri 7 Apr 2023": r"^[A-Z][a-z]{2} \d{1,2} [A-Z][a-z]{2} \d{4}$",
    "april 7, 2023": r"^[a-z]+ \d{1,2}, \d{4}$",
    "07 APR 2023": r"^\d{2} [A-Z]{3} \d{4}$",
    "07-Apr-2023": r"^\d{2}-[A-Z][a-z]{2}-\d{4}$",
    "07.04.2023": r"^\d{2}\.\d{2}\.\d{4}$",
    "2023/04/07": r"^\d{4}/\d{2}/\d{2}$",
}


@pytest.mark.parametrize("example, pattern", SPELLINGS.items())
def test_many_spellings_appear(shipped, example, pattern):
    train, val = shipped
    assert re.match(pattern, example)
    share = np.mean([bool(re.match(pattern, s)) for s, _ in train])
    assert share > 0.03, f"{example!r}: {share:.1%} of training sources"
    assert any(re.match(pattern, s) for s, _ in val)


def test_ordinals():
    assert [dates.ordinal(d) for d in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 31)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "31st"]


def test_vocab_round_trip(shipped):
    train, val = shipped
    vocab = PairVocab.from_pairs(train + val)
    assert vocab.chars == tuple(sorted(vocab.chars)) and vocab.size == 3 + len(vocab.chars)
    for source, target in val[:100]:
        assert vocab.decode(vocab.encode_source(source)) == source
        ids = vocab.encode_target(target)
        assert ids[-1] == PairVocab.EOS and vocab.decode(ids) == target
    assert vocab.decode([PairVocab.BOS, *vocab.encode_target("12"), 5, 6]) == "12"
    assert PairVocab.from_json(vocab.to_json()) == vocab
    with pytest.raises(UserError, match="character 'é' is not in the pair vocabulary"):
        vocab.encode_source("café")
    with pytest.raises(UserError, match="not a pair vocabulary"):
        PairVocab.from_json('{"specials": [], "chars": ["a"]}')
    with pytest.raises(UserError, match="cannot read the pair vocabulary"):
        PairVocab.from_json("{")


def test_encode_pairs_pads_and_shifts():
    pairs = [("abc", "xy"), ("a", "yyyx")]
    vocab = PairVocab.from_pairs(pairs)
    arrays = encode_pairs(pairs, vocab, max_source_len=4, max_target_len=4)
    assert arrays.source_NxS.shape == (2, 4) and arrays.target_in_NxT.shape == (2, 5)
    assert all(a.dtype == np.int32 for a in (arrays.source_NxS, arrays.source_len_N,
                                             arrays.target_in_NxT, arrays.target_out_NxT))
    assert arrays.source_len_N.tolist() == [3, 1]
    assert arrays.source_NxS[1].tolist() == [vocab.stoi["a"], 0, 0, 0]
    x, y = vocab.stoi["x"], vocab.stoi["y"]
    assert arrays.target_in_NxT.tolist() == [[1, x, y, 0, 0], [1, y, y, y, x]]
    assert arrays.target_out_NxT.tolist() == [[x, y, 2, 0, 0], [y, y, y, x, 2]]
    assert len(arrays) == 2 and arrays.take(np.array([1, 1])).source_len_N.tolist() == [1, 1]
    with pytest.raises(UserError, match="the target of pair 2 has 4 characters, more than "
                                        r"data.max_target_len = 3"):
        encode_pairs(pairs, vocab, max_source_len=4, max_target_len=3)


BAD_FILES = {
    "missing": (None, r"pair file not found: .*pairs.tsv$"),
    "empty": (b"", r"pair file .*pairs.tsv is empty"),
    "only_blank_lines": (b"\n\r\n", r"pair file .*pairs.tsv is empty"),
    "no_tab": (b"a\tb\nabc\n", r"pairs.tsv:2: no tab; expected source<TAB>target"),
    "two_tabs": (b"a\tb\tc\n", r"pairs.tsv:1: 2 tabs; expected exactly one"),
    "lines_ended_by_cr_alone": (b"a\tb\rc\td\re\tf\r", r"pairs.tsv:1: carriage returns "
                                r"\(\\r\) and 3 tabs in one line: are its lines ended by \\r "
                                r"alone\?"),
    "empty_source": (b"a\tb\n\tb\n", r"pairs.tsv:2: empty source"),
    # what ends a line inside a pair: the sampler would print the target on two lines
    "carriage_return_in_a_target": (b"a\tb\nc\tx\ry\n", r"pairs.tsv:2: the target holds "
                                    r"'\\r' \(U\+000D\), which ends a line"),
    "line_separator_in_a_source": ("a\tb\nc\u2028d\tx\n".encode(), r"pairs.tsv:2: the source "
                                   r"holds '\\u2028' \(U\+2028\), which ends a line"),
    "bom_of_a_second_file": ("\ufeffa\tb\n\ufeffc\td\n".encode(), r"pairs.tsv:2: the source "
                             r"holds a byte-order mark \(U\+FEFF\) inside the file"),
    "empty_target": (b"a\tb\r\nc\t\r\n", r"pairs.tsv:2: empty target"),
    "long_source": (b"a\tb\nabcdef\tb\n", r"pairs.tsv:2: the source has 6 characters, more "
                                         r"than data.max_source_len = 5 \(raise "
                                         r"--config.data.max_source_len"),
    "long_target": (b"a\tb\n" * 3 + b"a\tbcdefgh\n", r"pairs.tsv:4: the target has 7 "
                                                    r"characters, more than "
                                                    r"data.max_target_len = 6"),
    "not_utf8": (b"a\tb\nab\xff\tc\n", r"pairs.tsv:2: not UTF-8 text \(byte 0xff at byte "
                                       r"column 3\)"),
    "latin1_after_bom": (b"\xef\xbb\xbfcaf\xe9\tx\n", r"pairs.tsv:1: not UTF-8 text "
                                                      r"\(byte 0xe9 at byte column 7\)"),
    "blank_line_between_pairs": (b"a\tb\n\nc\td\n", r"pairs.tsv:2: a blank line between"),
    "blank_line_first": (b"\r\na\tb\n", r"pairs.tsv:1: a blank line before the first pair"),
}


@pytest.mark.parametrize("content, message", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_bad_pair_files_are_refused(tmp_path, content, message):
    path = tmp_path / "pairs.tsv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=message) as e:
        load_pairs(path, max_source_len=5, max_target_len=6)
    assert "\n" not in str(e.value)


def test_a_folder_is_refused(tmp_path):
    with pytest.raises(UserError, match="is a directory, not a file"):
        load_pairs(tmp_path, 5, 6)


def test_bom_crlf_and_trailing_blank_lines_pass(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_bytes("\ufeffcafé\tx y\r\nélan\tz\r\n\r\n\n".encode())
    assert load_pairs(path, max_source_len=4, max_target_len=3) == [("café", "x y"),
                                                                   ("élan", "z")]


def test_batch_indices_depend_only_on_seed_stream_and_index():
    a = pair_batch_indices(1000, 64, seed=1, stream=0, index=7)
    assert a.shape == (64,) and a.min() >= 0 and a.max() < 1000
    np.testing.assert_array_equal(a, pair_batch_indices(1000, 64, 1, 0, 7))
    for other in ((1000, 64, 2, 0, 7), (1000, 64, 1, 1, 7), (1000, 64, 1, 0, 8)):
        assert not np.array_equal(a, pair_batch_indices(*other))


def test_eval_batches_count_every_pair_once():
    index_KxB, mask_KxB = eval_batches(10, 4)
    assert index_KxB.shape == mask_KxB.shape == (3, 4)
    assert index_KxB[mask_KxB].tolist() == list(range(10))
    assert mask_KxB.sum() == 10 and index_KxB[~mask_KxB].tolist() == [0, 0]
    index_KxB, mask_KxB = eval_batches(8, 4)
    assert index_KxB.shape == (2, 4) and mask_KxB.all()


def test_held_out_characters_that_no_training_pair_has_are_warned_of(tmp_path, capsys):
    """'é' only in the held-out file: it joins the vocabulary (so that the held-out pairs can
    be encoded) with an embedding no step trains, and the held-out scores count it."""
    from conftest import tiny_config
    from gpt_jax.pairs_task import PairsTask

    (tmp_path / "train.tsv").write_text("".join(f"number {n}\t{n:02d}\n" for n in range(100)))
    (tmp_path / "val.tsv").write_text("numbér 3\t03\n")
    config = tiny_config(name="encoder_decoder", block_size=11)
    config.data.update(task="pairs", path=str(tmp_path / "train.tsv"),
                       val_path=str(tmp_path / "val.tsv"))
    task = PairsTask.load(config)
    assert task.vocab.decode(task.vocab.encode_source("é")) == "é"
    assert capsys.readouterr().err == (
        "warning: the held-out pairs hold 1 character(s) that no training pair has ('é'): "
        "their embeddings are never trained, and the held-out scores count them\n")
    config.data.val_path = ""  # every 10th of the same file: every character is trained on
    PairsTask.load(config)
    assert capsys.readouterr().err == ""


def _pairs_config(tmp_path, val_path=""):
    from conftest import tiny_config

    config = tiny_config(name="encoder_decoder", block_size=11)
    config.data.update(task="pairs", path=str(tmp_path / "train.tsv"), val_path=val_path)
    return config


def test_a_pair_written_twice_is_never_both_trained_on_and_held_out(tmp_path):
    """Every 10th line was held out, repeats and all: a file of 30 pairs written 10 times
    each held out pairs it also trained on, and scored them as held out."""
    from gpt_jax.pairs_task import load_split

    lines = [f"number {n}\t{n:02d}\n" for n in range(30)]
    (tmp_path / "train.tsv").write_text("".join(lines * 10))
    train, held_out = load_split(_pairs_config(tmp_path))
    assert held_out == [(f"number {n}", f"{n:02d}") for n in range(9, 30, 10)]
    assert not set(train) & set(held_out) and len(train) == 270  # repeats kept in training
    (tmp_path / "train.tsv").write_text("".join(lines))  # no repeat: the split as it was
    train, held_out = load_split(_pairs_config(tmp_path))
    assert [p for i, p in enumerate(load_pairs(tmp_path / "train.tsv", 32, 10))
            if i % 10 == 9] == held_out and len(train) == 27


def _held_out_beside_30_training_pairs(tmp_path, val_name: str, val_text: str) -> list:
    """load_split's held-out pairs of a val file beside 'number 0' .. 'number 29'."""
    from gpt_jax.pairs_task import load_split

    (tmp_path / "train.tsv").write_text("".join(f"number {n}\t{n:02d}\n" for n in range(30)))
    (tmp_path / val_name).write_text(val_text)
    return load_split(_pairs_config(tmp_path, str(tmp_path / val_name)))[1]


def test_held_out_pairs_that_the_training_file_holds_are_left_out_and_said(tmp_path, capsys):
    training = "".join(f"number {n}\t{n:02d}\n" for n in range(30))
    with pytest.raises(UserError, match=r"every pair of data.val_path=.*copy.tsv is also in "
                                        r"data.path=.*train.tsv: held-out pairs must be"):
        _held_out_beside_30_training_pairs(tmp_path, "copy.tsv", training)
    held_out = _held_out_beside_30_training_pairs(
        tmp_path, "val.tsv", "number 3\t03\nnumber 31\t31\nnumber 32\t32\n")
    assert held_out == [("number 31", "31"), ("number 32", "32")]
    assert capsys.readouterr().err == (
        f"warning: 1 of the 3 distinct pairs of data.val_path={tmp_path / 'val.tsv'} are also "
        f"training pairs (in data.path): they are left out of the held-out scores\n")


def test_a_held_out_pair_written_twice_in_the_val_file_is_scored_once(tmp_path, capsys):
    """It counted twice in val_loss and val_exact_match, and was printed twice."""
    held_out = _held_out_beside_30_training_pairs(
        tmp_path, "val.tsv", "number 31\t31\nnumber 32\t32\nnumber 31\t31\n")
    assert held_out == [("number 31", "31"), ("number 32", "32")]
    assert capsys.readouterr().err == (
        f"note: 1 of the 3 pairs of data.val_path={tmp_path / 'val.tsv'} repeat an earlier one: "
        f"each distinct pair is scored once\n")
