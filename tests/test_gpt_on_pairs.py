"""The decoder-only GPT on pairs (configs/seq2seq.py:gpt), the encoder–decoder's comparison:
it is taught the target only, the targets it writes greedily are lined up with the targets
they are scored against, and the exact match counts the held-out pairs written right."""


import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from conftest import REPO
from gpt_jax.config import load_config_file
from gpt_jax.layout import BatchLayout
from gpt_jax.pairs import PairVocab, encode_pairs
from gpt_jax.pairs_task import PairsTask, prefix_sequences
from gpt_jax.steps import replicate
from gpt_jax.translation import complete_greedily

BOS, EOS = PairVocab.BOS, PairVocab.EOS
TRAIN = [("abc", "xy"), ("b", "yyx"), ("cab", "x"), ("a", "xxyy"), ("bb", "y"), ("ca", "yx")]
VAL = [("ab", "yx"), ("cba", "xyx"), ("c", "y"), ("bca", "yy"), ("aa", "x")]  # 5: one batch
# of 4 and one with 3 padding rows


def test_prefix_sequences_teach_the_target_only():
    vocab = PairVocab.from_pairs(TRAIN)
    x, y, w = prefix_sequences(encode_pairs(TRAIN[:2], vocab, 4, 4), L=9)
    ids = lambda text: list(vocab.encode_source(text))
    first = ids("abc") + [BOS] + ids("xy") + [EOS]  # source<BOS>target<EOS>, 7 tokens
    second = ids("b") + [BOS] + ids("yyx") + [EOS]
    for row, sequence, source_len in ((0, first, 3), (1, second, 1)):
        n = len(sequence) - 1
        np.testing.assert_array_equal(x[row], sequence[:-1] + [PairVocab.PAD] * (9 - n))
        np.testing.assert_array_equal(y[row], sequence[1:] + [PairVocab.PAD] * (9 - n))
        # Taught from the BOS (whose next token is the target's first) to the EOS, nothing else:
        np.testing.assert_array_equal(w[row], [0] * source_len + [1] * (n - source_len)
                                      + [0] * (9 - n))


def _task():
    config = load_config_file(str(REPO / "configs" / "seq2seq.py") + ":gpt")
    config.data.max_source_len, config.data.max_target_len = 4, 4
    m = config.model
    m.block_size, m.n_layer, m.n_head, m.n_embd = 4 + 4 + 1, 1, 2, 16
    config.train.batch_size = 4
    task = PairsTask(config, TRAIN, VAL, PairVocab.from_pairs(TRAIN + VAL))
    model = task.build_model()
    x_1xL = jnp.zeros((1, m.block_size), jnp.int32)
    params = model.init(jax.random.key(0), x_1xL)["params"]
    # Far from init, so that the greedy answers differ from row to row.
    params = jax.tree.map(lambda p: p + 0.5 * jax.random.normal(jax.random.key(1), p.shape),
                          params)
    return task, model, params


def _greedy_by_hand(model, params, source: list[int], steps: int, L: int) -> list[int]:
    """The plainest greedy loop: the whole sequence through the model for every token."""
    sequence = [*source, BOS]
    for _ in range(steps):
        x_1xL = np.zeros((1, L), np.int32)
        x_1xL[0, :len(sequence)] = sequence
        logits = model.apply({"params": params}, jnp.asarray(x_1xL))
        sequence.append(int(jnp.argmax(logits[0, len(sequence) - 1, EOS:])) + EOS)  # no PAD, BOS
    return sequence[len(source) + 1:]


def test_the_written_targets_sit_where_the_targets_are_scored():
    task, model, params = _task()
    x, y, w = (np.asarray(a) for a in task._rows(task.val))
    written = np.asarray(task.write(model, params, (jnp.asarray(x),)))
    answers = set()
    for n, (source, _) in enumerate(VAL):
        by_hand = _greedy_by_hand(model, params, list(task.vocab.encode_source(source)), task.T,
                                  task.L)
        taught = w[n] == 1
        np.testing.assert_array_equal(written[n][taught], by_hand[:taught.sum()])
        answers.add(tuple(by_hand))
    assert len(answers) > 1, "every row wrote the same answer: the test would prove little"


def test_neither_pad_nor_bos_is_ever_written_greedily():
    """A model whose likeliest tokens are PAD and BOS writes its likeliest other token: either
    of them, before the end token, was skipped when the target was printed."""

    class FavoursPadAndBos(nn.Module):
        @nn.compact
        def __call__(self, x_BxL):
            logits_V = self.param("logits", lambda _: jnp.array([9.0, 8.0, 1.0, 2.0, 0.0]))
            return jnp.broadcast_to(logits_V, (*x_BxL.shape, 5))

    model = FavoursPadAndBos()
    x_BxL = jnp.array([[3, BOS, 0, 0], [4, 3, BOS, 0]])
    params = model.init(jax.random.key(0), x_BxL)["params"]
    written = complete_greedily(model, params, x_BxL, jnp.array([2, 3]), steps=3)
    np.testing.assert_array_equal(written, [[3, 3, 3], [3, 3, 3]])


def test_the_exact_match_is_the_share_of_held_out_pairs_written_right():
    """A writer that answers rows 0 and 3 right (and writes anything where nothing is taught)
    and each other row wrong on one taught token only (a middle one, its first, its end
    token): 2 of 5, the 3 padding rows of the last batch counted nowhere."""
    task, model, params = _task()

    x_NxL, y_NxL, w_NxL = (jnp.asarray(a) for a in task._rows(task.val))
    taught_N = [np.flatnonzero(np.asarray(w)) for w in w_NxL]
    wrong_at = {1: taught_N[1][len(taught_N[1]) // 2], 2: taught_N[2][0], 4: taught_N[4][-1]}
    assert len(taught_N[1]) >= 3 and len(set(wrong_at.values())) == 3
    written_NxL = jnp.where(w_NxL == 1, y_NxL, 7)  # untaught slots: any token at all
    for n, t in wrong_at.items():
        written_NxL = written_NxL.at[n, t].add(1)

    class Writer(PairsTask):
        def write(self, model, params, inputs):
            # Which held-out pair each row of the batch is, found by its input sequence:
            n_B = jnp.argmax(jnp.all(inputs[0][:, None] == x_NxL[None], axis=-1), axis=-1)
            return written_NxL[n_B]

    writer = Writer(task.config, TRAIN, VAL, task.vocab)
    layout = BatchLayout(task.config.train.batch_size, 1, 0, 1)
    scores = writer.evaluator(model)(replicate(params), writer.eval_data(layout))
    assert scores["val_exact_match"][0] == np.float32(2) / np.float32(5)


def test_the_training_loss_is_the_mean_over_the_batch_s_taught_tokens():
    """The step's loss (its micro-batches' losses averaged, as the train step does) is the
    cross-entropy summed over every taught target token of the global batch, divided by their
    number: not the mean over all slots, nor the mean of the micro-batches' means (the pairs
    here teach 2 to 5 tokens each)."""
    task, model, params = _task()
    data = task._rows(task.train)
    for step, accum in ((0, 1), (1, 2), (2, 4)):
        layout = BatchLayout(task.config.train.batch_size, 1, 0, 1, grad_accum_steps=accum)
        inputs = jax.tree.map(lambda a: np.asarray(a)[0, 0],
                              task.chunk_inputs(layout, step, 1, 1))
        rows_A, scale_A = task.batch(data, inputs)
        loss = task.loss_fn(model)
        losses = [loss(params, (tuple(r[a] for r in rows_A), scale_A[a])) for a in range(accum)]
        index_B = inputs[0].reshape(-1)
        x_BxL, y_BxL, w_BxL = (np.asarray(a)[index_B] for a in data)
        logits = np.asarray(model.apply({"params": params}, jnp.asarray(x_BxL)), np.float64)
        log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        taken_BxL = np.take_along_axis(log_p, y_BxL[..., None], -1)[..., 0]
        by_hand = -(taken_BxL * w_BxL).sum() / w_BxL.sum()
        assert len(set(w_BxL.sum(-1))) > 1, "the rows teach as many tokens: the test proves little"
        np.testing.assert_allclose(np.mean(losses), by_hand, rtol=1e-5)


def test_the_sampler_writes_a_pairs_gpt_s_answers_greedily_and_refuses_to_sample(tmp_path):
    """A decoder-only GPT on pairs writes each answer greedily, re-reading its window: the
    flags that would sample, or decode with a cache, are refused in one line, not ignored."""
    from conftest import run_python

    words = ["".join(w) for n in (2, 3) for w in itertools.product("abc", repeat=n)][:20]
    (tmp_path / "pairs.tsv").write_text("".join(f"{w}\t{w[::-1]}\n" for w in words))
    run = tmp_path / "run"
    trained = run_python(["train.py", "--config=configs/seq2seq.py:gpt", f"--workdir={run}",
                          f"--config.data.path={tmp_path / 'pairs.tsv'}",
                          "--config.data.max_source_len=4", "--config.data.max_target_len=4",
                          "--config.model.n_layer=1", "--config.model.n_embd=16",
                          "--config.model.n_head=2", "--config.train.batch_size=4",
                          "--config.train.num_steps=2", "--config.train.eval_iters=1",
                          "--config.train.loss_plot=False"])
    assert trained.returncode == 0, trained.stderr
    greedy = run_python(["-m", "gpt_jax.sample", f"--workdir={run}", "--prompt=ab"])
    assert greedy.returncode == 0 and len(greedy.stdout.splitlines()) == 1, greedy.stderr
    for flag in ("--temperature=0.5", "--top_k=2", "--no_cache"):
        refused = run_python(["-m", "gpt_jax.sample", f"--workdir={run}", "--prompt=ab", flag])
        assert refused.returncode == 2 and refused.stderr == (
            f"error: {flag.split('=')[0]}: this run, a decoder-only GPT on pairs, writes its "
            f"answers greedily, re-reading the whole window: drop it\n"), refused.stderr
    for flag, said in (("--num_samples=2", "--num_samples=2 with greedy decoding writes the "
                                           "same target 2 times"),  # it suggested --temperature
                       ("--seed=7", "--seed: greedy decoding draws nothing at random, so every "
                                    "seed writes the same target")):
        refused = run_python(["-m", "gpt_jax.sample", f"--workdir={run}", "--prompt=ab", flag])
        assert refused.returncode == 2 and refused.stderr == (
            f"error: {said}; drop {flag.split('=')[0]}\n"), refused.stderr


def test_a_pairs_gpt_builds_its_training_sequences_once_not_at_every_chunk(monkeypatch):
    """chunk_inputs rebuilt every training sequence in a Python loop over all pairs to read
    their weights: each chunk cost as much as the whole data (training 50× slower on
    400,000 pairs, and its tokens/s counted that time)."""
    from gpt_jax import pairs_task

    config = load_config_file(str(REPO / "configs" / "seq2seq.py:gpt"))
    task = PairsTask.load(config)
    built = []
    real = pairs_task.prefix_sequences
    monkeypatch.setattr(pairs_task, "prefix_sequences",
                        lambda arrays, L: built.append(len(arrays)) or real(arrays, L))
    layout = BatchLayout.current(config.train.batch_size, 1)
    task.device_data()
    for step in range(5):
        task.chunk_inputs(layout, step, 1, 1)
    task.memory_parts(layout)
    assert built == [len(task.train)]
