"""What the data path must keep that other tests did not pin (found by mutation testing):
the batch streams apart and stable, every window and pair reachable, split edges, and a
prepared folder's meta.json read strictly."""

import json

import numpy as np
import pytest

from gpt_jax.dataset import TRAIN, TRAIN_STREAM, VAL, Corpus, batch_offsets, eval_stream
from gpt_jax.errors import UserError
from gpt_jax.pairs import pair_batch_indices
from gpt_jax.prepare import prepare
from gpt_jax.token_files import in_vocabulary, open_prepared
from gpt_jax.tokenizer import CharTokenizer


def test_training_and_each_evaluation_draw_from_streams_of_their_own():
    """One stream for all would evaluate "train loss" on the very batches just trained on."""
    streams = {TRAIN_STREAM, eval_stream(TRAIN), eval_stream(VAL)}
    assert len(streams) == 3
    drawn = [tuple(batch_offsets(10_000, 8, 16, 0, s, 3)) for s in sorted(streams)]
    assert len(set(drawn)) == 3


def test_the_batch_order_is_what_earlier_versions_drew():
    """A resumed run of an older version would otherwise silently change its data order."""
    np.testing.assert_array_equal(batch_offsets(1000, 8, 4, seed=0, stream=0, index=0),
                                  np.random.default_rng((0, 0, 0)).integers(0, 992, size=4))
    np.testing.assert_array_equal(pair_batch_indices(50, 4, seed=1, stream=2, index=3),
                                  np.random.default_rng((1, 2, 3)).integers(0, 50, size=4))


def test_every_pair_is_drawn_the_last_one_too():
    drawn = np.concatenate([pair_batch_indices(5, 16, 0, 0, i) for i in range(20)])
    assert set(drawn.tolist()) == set(range(5))


def test_a_split_of_exactly_block_size_tokens_is_refused_in_one_line():
    """It holds no (block_size + 1)-token window: a traceback from rng.integers(0, 0)."""
    tokenizer = CharTokenizer(list("ab"))
    corpus = Corpus(tokenizer, np.zeros(100, np.int32), np.zeros(8, np.int32))
    with pytest.raises(UserError, match="the val split has 8 tokens, fewer than block_size"):
        corpus.check_block_size(8)
    corpus.check_block_size(7)


def test_an_id_equal_to_the_vocabulary_size_is_refused():
    with pytest.raises(UserError, match="holds token id 65, past the vocabulary of 65"):
        in_vocabulary(np.array([3, 65], np.uint8), 65, np.zeros(1))
    in_vocabulary(np.array([3, 64], np.uint8), 65, np.zeros(1))


def test_a_text_too_short_to_split_is_refused(tmp_path):
    (tmp_path / "tiny.txt").write_text("abcde", encoding="utf-8")
    with pytest.raises(UserError, match="5 tokens cannot be split with --val_fraction=0.9"):
        prepare([str(tmp_path / "tiny.txt")], tmp_path / "data", val_fraction=0.9,
                log=lambda _: None)  # 0.5 of a train token: train would be empty
    assert not (tmp_path / "data").exists()


@pytest.fixture
def prepared(tmp_path):
    (tmp_path / "text.txt").write_text("to be or not to be, that is the question\n" * 20,
                                       encoding="utf-8")
    out = tmp_path / "data"
    prepare([str(tmp_path / "text.txt")], out, log=lambda _: None)
    return out


def _edit(out, **fields):
    meta = json.loads((out / "meta.json").read_text())
    meta.update(fields)
    (out / "meta.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("damage, message", [
    (lambda out: _edit(out, dtype="float32"), r"dtype 'float32' is not one of"),
    (lambda out: _edit(out, train_tokens=True), r"lacks the field 'train_tokens'"),
    (lambda out: _edit(out, tokenizer="bpe"), r"is a char tokenizer but meta.json says bpe"),
    (lambda out: _edit(out, val_tokens=0), r"val\.bin holds .* val_tokens = 0"),
    (lambda out: (out / "train.bin").open("ab").write(b"\x01\x02"),  # appended to
     r"train\.bin holds .* bytes but meta.json says train_tokens"),
], ids=["dtype_float32", "count_true", "tokenizer_kind", "empty_split", "longer_file"])
def test_a_prepared_folder_that_disagrees_with_its_meta_json_is_refused(prepared, damage,
                                                                        message):
    open_prepared(prepared)
    damage(prepared)
    with pytest.raises(UserError, match=message):
        open_prepared(prepared)
