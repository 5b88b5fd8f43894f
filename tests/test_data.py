import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gpt_jax.dataset import TRAIN_STREAM, Corpus, batch_offsets, get_batch, load_text
from gpt_jax.errors import UserError
from gpt_jax.layout import BatchLayout


def test_split_is_90_10(shakespeare):
    corpus = Corpus.from_text(shakespeare)
    n = len(shakespeare)
    assert len(corpus.train) == int(0.9 * n) and len(corpus.train) + len(corpus.val) == n


def test_targets_are_inputs_shifted_by_one(shakespeare):
    data = Corpus.from_text(shakespeare).train
    x, y = get_batch(data, 16, 8, seed=3, stream=TRAIN_STREAM, index=5)
    assert x.shape == y.shape == (8, 16)
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])


def test_batches_depend_only_on_seed_and_step(shakespeare):
    data = Corpus.from_text(shakespeare).train
    a = get_batch(data, 8, 4, seed=1, stream=TRAIN_STREAM, index=7)
    b = get_batch(data, 8, 4, seed=1, stream=TRAIN_STREAM, index=7)
    c = get_batch(data, 8, 4, seed=1, stream=TRAIN_STREAM, index=8)
    d = get_batch(data, 8, 4, seed=2, stream=TRAIN_STREAM, index=7)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[0], d[0])


def test_process_shares_tile_the_global_batch(shakespeare):
    data = Corpus.from_text(shakespeare).train
    whole, _ = get_batch(data, 8, 12, 0, TRAIN_STREAM, 3)
    layouts = [BatchLayout(12, 3, p, 2) for p in range(3)]
    parts = [get_batch(data, 8, 12, 0, TRAIN_STREAM, 3, lay.rows)[0] for lay in layouts]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert layouts[0].for_train(parts[0]).shape == (2, 1, 2, 8)


def test_layouts_put_every_row_where_the_train_and_eval_steps_expect_it():
    """8 rows over 2 devices × 2 micro-batches of 2: device d computes rows 4d .. 4d+3, its
    micro-batch a rows 4d+2a, 4d+2a+1, in every layout of the same batch."""
    layout = BatchLayout(8, 1, 0, 2, grad_accum_steps=2)
    expected_DxAxB = np.array([[[4 * d + 2 * a + i for i in range(2)] for a in range(2)]
                               for d in range(2)])
    np.testing.assert_array_equal(layout.row_ids(), expected_DxAxB)
    np.testing.assert_array_equal(layout.for_train(np.arange(8)[:, None])[..., 0],
                                  expected_DxAxB)
    starts_KxR = np.arange(3)[:, None] * 100 + np.arange(8)  # step k, row r: 100k + r
    np.testing.assert_array_equal(layout.for_chunk(starts_KxR)[:, 2], 200 + expected_DxAxB)
    x_NxRx1 = (np.arange(3)[:, None] * 100 + np.arange(8))[..., None]  # batch n, row r
    out = layout.for_eval(x_NxRx1)[..., 0]  # (devices, batches × micro-batches, rows)
    for n in range(3):
        np.testing.assert_array_equal(out[:, 2 * n: 2 * n + 2], 100 * n + expected_DxAxB)


def test_a_process_computes_its_own_rows_only():
    layouts = [BatchLayout(12, 3, p, 2) for p in range(3)]
    np.testing.assert_array_equal(np.concatenate([lay.row_ids().ravel() for lay in layouts]),
                                  np.arange(12))


def test_indivisible_batch_is_refused():
    with pytest.raises(UserError, match=r"batch_size \(12\) must be divisible .* = 8"):
        BatchLayout(12, 1, 0, 8)


def test_corpus_shorter_than_a_block_is_refused():
    with pytest.raises(UserError, match="the corpus has 20 tokens, fewer than block_size"):
        Corpus.from_text("abcdefghij" * 2).check_block_size(20)
    with pytest.raises(UserError, match="the val split has 2 tokens"):
        Corpus.from_text("abcdefghij" * 2).check_block_size(8)


@pytest.mark.parametrize("content, message", [
    (None, "data file not found"),
    (b"", "is empty"),
    (b"ok \xff\xfe bad", "is not UTF-8 text"),
])
def test_bad_data_files_are_refused(tmp_path, content, message):
    path = tmp_path / "data.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        load_text(str(path))


def test_any_utf8_file_loads(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("héllo wörld\n" * 10, encoding="utf-8")
    corpus = Corpus.from_text(load_text(str(path)))
    assert corpus.tokenizer.vocab_size == len(set("héllo wörld\n"))


@settings(max_examples=50, deadline=None)
@given(n_tokens=st.integers(2, 500), block=st.integers(1, 64), batch=st.integers(1, 16),
       seed=st.integers(0, 2**31), step=st.integers(0, 10**9))
def test_batch_sampler_properties(n_tokens, block, batch, seed, step):
    """For any corpus, block and step: targets are inputs shifted by one, and every window
    lies inside the corpus (the last target is at most the last token)."""
    assume(n_tokens >= block + 1)
    data = np.arange(n_tokens, dtype=np.int32)  # token value = its position
    x, y = get_batch(data, block, batch, seed, TRAIN_STREAM, step)
    assert x.shape == y.shape == (batch, block)
    np.testing.assert_array_equal(y, x + 1)  # shifted by one, contiguous
    assert x.min() >= 0 and y.max() <= n_tokens - 1


def test_the_batches_reach_every_window_of_the_stream():
    """Over enough batches every start offset 0 .. n - block - 1 is drawn: the first and the
    last window too (a range one short passes the test above)."""
    n_tokens, block = 40, 8
    drawn = np.concatenate([batch_offsets(n_tokens, block, 16, 0, TRAIN_STREAM, i)
                            for i in range(200)])
    assert set(drawn.tolist()) == set(range(n_tokens - block))


def test_a_text_in_a_resumed_runs_vocabulary_keeps_its_fingerprint(tmp_path):
    """An edit that dropped a character resumed in the run's own (larger) vocabulary, whose
    copy of the task had no fingerprint: no "other data" warning, a stale data.json."""
    from conftest import tiny_config
    from gpt_jax.text_task import TextTask
    from gpt_jax.tokenizer import CharTokenizer

    path = tmp_path / "text.txt"
    path.write_text("abcdefg \n" * 100)
    config = tiny_config()
    config.data.path = str(path)
    task = TextTask.load(config)
    resumed = task.with_vocab(CharTokenizer.from_text("abcdefgh \n"))
    assert resumed.vocab_size == task.vocab_size + 1
    assert resumed.fingerprint == task.fingerprint is not None
