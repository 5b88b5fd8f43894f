"""Every behaviour-changing field of the train, data and sample sections, and the model fields
block_size, context, mlp_hidden, dropout, fused_dropout, init, compute_dtype and query_chunk,
checked against values worked out here: a field that the code ignored (falling back to its
default) or wired to the wrong place fails its test.

The forward pass, AdamW and the sampling distribution have NumPy references of their own;
here the model only scores batches, so that a test can pin which params, which batches and
which randomness the trainer used. Every run setting differs from both base_config() and
conftest.tiny_config(), so a field read from the wrong place shows.
Legend: B batch, T block_size, V vocab, C channels, H heads, D head size.
"""

import contextlib
import dataclasses
import functools
import io
import json
import math
import re
import struct
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.extend import core as jax_core
from tensorboardX.proto import event_pb2

from conftest import tiny_config
from gpt_jax import reporting
from gpt_jax.dataset import TRAIN, TRAIN_STREAM, VAL, eval_stream, get_batch
from gpt_jax.generation import sample_texts
from gpt_jax.metrics import read_metrics
from gpt_jax.models import build_model
from gpt_jax.restore import load_run
from gpt_jax.state import param_shapes
from gpt_jax.steps import cross_entropy
from gpt_jax.tokenizer import CharTokenizer
from gpt_jax.trainer import Trainer

V = 65  # tiny Shakespeare's characters
# A loss computed here (a jit of model.apply, log-softmax in float64) and the trainer's (float32,
# inside its pmapped and scanned steps) differ by float32 rounding and reduction order: measured
# 2.5e-7 relative. A wrong batch, wrong params or a wrong dropout mask moves it by more, and the
# tests check that their nearest alternatives fall outside the tolerance.
LOSS_RTOL = 1e-5


# --- helpers ---------------------------------------------------------------------------------


def _run_config(**train) -> ml_collections.ConfigDict:
    """The tiny GPT at block 6, with run settings none of which is a default."""
    config = tiny_config(block_size=6)
    config.train.update(dict(seed=7, batch_size=6, num_steps=10, steps_per_call=1,
                             eval_interval=7, eval_iters=3, log_interval=1, checkpoint_every=1,
                             keep_checkpoints=10))
    config.train.update(train)
    return config


class _Clock:
    """Stands in for `time` in gpt_jax.reporting: every reading is one second after the last,
    so each chunk of steps takes exactly one second of the throughput clock."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 1.0
        return self.now


@dataclasses.dataclass
class Run:
    workdir: Path
    config: ml_collections.ConfigDict
    stdout: str
    chunk_starts_shape: tuple  # what the compiled train chunk takes as its batches' offsets

    @functools.cached_property
    def records(self) -> dict[int, dict]:
        return {r["step"]: r for r in read_metrics(self.workdir)}

    @functools.cached_property
    def events(self) -> dict[str, dict[int, float]]:
        return tensorboard_scalars(self.workdir)

    def params(self, step: int):
        return load_run(self.workdir, step).params

    def progress_steps(self) -> list[int]:
        return [int(s) for s in re.findall(r"^step +(\d+) \| loss ", self.stdout, re.M)]


def _train(config: ml_collections.ConfigDict, workdir: Path) -> Run:
    """What train_and_evaluate does, with stdout captured (not a terminal: plain progress
    lines), the throughput clock of _Clock, and the compiled train chunk looked at."""
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        patch.setattr(reporting, "time", _Clock())
        trainer = Trainer(config, workdir)
        try:
            # its arguments: state, token stream, start offsets, steps, stop signal
            shape = trainer.train_chunk.in_avals[0][2].shape
            trainer.run()
        finally:
            trainer.close()
    return Run(workdir, config, out.getvalue(), shape)


def tensorboard_scalars(workdir: Path) -> dict[str, dict[int, float]]:
    """{tag: {step: value}} of the run's event files as TensorBoard shows them: one value at a
    step (raises on two), and a SessionLog START at step s dropping the events before it at
    steps >= s (TFRecords: u64 length, u32 crc, event, u32 crc; read without TensorFlow)."""
    seen: list[tuple[str, int, float]] = []
    for path in sorted((workdir / "tensorboard").glob("events*")):
        data, i = path.read_bytes(), 0
        while i < len(data):
            (n,) = struct.unpack("<Q", data[i:i + 8])
            event = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
            i += 12 + n + 4
            if event.session_log.status == event_pb2.SessionLog.START:
                seen = [(tag, step, v) for tag, step, v in seen if step < event.step]
            seen += [(value.tag, event.step, value.simple_value) for value in event.summary.value]
    scalars: dict[str, dict[int, float]] = {}
    for tag, step, value in seen:
        assert step not in scalars.setdefault(tag, {}), f"{tag} twice at step {step}"
        scalars[tag][step] = value
    return scalars


@functools.cache
def _jitted(model):
    """model.init and model.apply, compiled once per model."""
    apply = jax.jit(model.apply, static_argnames=("train", "capture_intermediates", "mutable"))
    return jax.jit(model.init), apply


def initial_params(model, seed: int, block_size: int):
    """What a run from `seed` must start from: flax's init of the model under key(seed)."""
    return _jitted(model)[0](jax.random.key(seed),
                             jnp.zeros((1, block_size), jnp.int32))["params"]


def logits_of(model, params, x, **kwargs) -> np.ndarray:
    return np.asarray(_jitted(model)[1]({"params": params}, x, **kwargs))


def mean_loss(model, params, batches, dropout_keys=None) -> float:
    """Mean next-token cross-entropy over (x, y) batches, in float64 from the float32 logits.
    With dropout_keys(row), in training mode, each example under its own key."""
    losses = []
    for x, y in batches:
        if dropout_keys is None:
            logits = logits_of(model, params, x)
        else:
            logits = np.concatenate([
                logits_of(model, params, x[r:r + 1], train=True,
                          rngs={"dropout": dropout_keys(r)}) for r in range(len(x))])
        logits = logits.astype(np.float64)
        top = logits.max(-1, keepdims=True)
        logp = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
        losses.append(-np.take_along_axis(logp, np.asarray(y)[..., None], -1).mean())
    return float(np.mean(losses))


def split_corpus(text: str) -> tuple[CharTokenizer, np.ndarray, np.ndarray]:
    """The sorted-character vocabulary and the lecture's 90/10 split of the text's ids."""
    chars = sorted(set(text))
    ids = np.array([chars.index(c) for c in text], np.int32)
    n = int(0.9 * len(ids))
    return CharTokenizer(chars), ids[:n], ids[n:]


def assert_trees_equal(a, b, atol: float) -> None:
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=0, atol=atol), a, b)


@pytest.fixture(scope="module")
def shakespeare_ids(shakespeare):
    return split_corpus(shakespeare)


@pytest.fixture(scope="module")
def run_a(tmp_path_factory) -> Run:
    """One step per call, a checkpoint after every step (all 10 kept), every step logged."""
    return _train(_run_config(), tmp_path_factory.mktemp("a"))


@pytest.fixture(scope="module")
def run_b(tmp_path_factory) -> Run:
    """Run A's model, seed and batches in 3 micro-batches, two steps per call, one step
    fewer, fewer checkpoints and logs, and a sample at every evaluation."""
    # Calls of steps 1, 2 and 3 (one step each: the first compiles, the second is timed, and
    # its time reaches the host after the third is sent), 4 (cut by the checkpoint), 5-6,
    # then 7, 8 and 9, cut short by the evaluation, the checkpoint and the end: each would
    # land mid-call unless it cut the calls.
    config = _run_config(num_steps=9, steps_per_call=2, grad_accum_steps=3,
                         checkpoint_every=4, keep_checkpoints=2, log_interval=2)
    config.sample.max_new_tokens = 13  # longer than the block: the sampler must slide
    return _train(config, tmp_path_factory.mktemp("b"))


# --- train.seed, batch_size, eval_iters, eval_interval, num_steps; model.block_size -----------


def test_eval_losses_are_the_mean_over_eval_iters_fixed_batches_of_the_seed(run_a,
                                                                           shakespeare_ids):
    """train_loss and val_loss at every evaluation: the eval-mode loss of that step's params
    (at step 0, the init under key(seed)) over exactly eval_iters batches of batch_size rows
    and block_size tokens, indices 0 .. eval_iters-1 of each split's eval stream."""
    _, train_ids, val_ids = shakespeare_ids
    t, T = run_a.config.train, run_a.config.model.block_size
    model = build_model(run_a.config.model, V)
    assert sorted(run_a.records) == [0, 7, 10]
    for step, record in run_a.records.items():
        params = initial_params(model, t.seed, T) if step == 0 else run_a.params(step)
        for name, split, ids in (("train_loss", TRAIN, train_ids), ("val_loss", VAL, val_ids)):
            batches = [get_batch(ids, T, t.batch_size, t.seed, eval_stream(split), i)
                       for i in range(t.eval_iters + 1)]
            expected = mean_loss(model, params, batches[:t.eval_iters])
            assert record[name] == pytest.approx(expected, rel=LOSS_RTOL), (step, name)
            # One batch more would fall outside the tolerance: the check tells them apart.
            assert abs(mean_loss(model, params, batches) - expected) > LOSS_RTOL * expected
    other_seed = mean_loss(model, initial_params(model, t.seed + 1, T),
                           [get_batch(val_ids, T, t.batch_size, t.seed, eval_stream(VAL), i)
                            for i in range(t.eval_iters)])
    assert abs(other_seed - run_a.records[0]["val_loss"]) > LOSS_RTOL * other_seed


def test_every_step_trains_on_the_batch_of_its_seed_and_step(run_a, shakespeare_ids):
    """The loss logged at step k is the loss of the params after step k-1 on training batch
    k-1 of the seed (stream 0): batch_size rows of block_size + 1 tokens."""
    _, train_ids, _ = shakespeare_ids
    t, T = run_a.config.train, run_a.config.model.block_size
    model = build_model(run_a.config.model, V)
    logged = run_a.events["step_loss"]
    assert sorted(logged) == list(range(1, t.num_steps + 1))
    params = initial_params(model, t.seed, T)
    for step in range(1, t.num_steps + 1):
        batch = get_batch(train_ids, T, t.batch_size, t.seed, TRAIN_STREAM, step - 1)
        expected = mean_loss(model, params, [batch])
        assert logged[step] == pytest.approx(expected, rel=LOSS_RTOL), step
        # the next batch would fall outside the tolerance: the check tells them apart
        next_batch = get_batch(train_ids, T, t.batch_size, t.seed, TRAIN_STREAM, step)
        assert abs(mean_loss(model, params, [next_batch]) - expected) > LOSS_RTOL * expected
        params = run_a.params(step)
    assert params["position_embedding_table"]["embedding"].shape == (T, 16)


def test_tokens_per_second_count_batch_size_times_block_size_tokens_a_step(run_a):
    """With one step per call and a clock that ticks one second per chunk, the rate is the
    tokens of one step: 6 rows × 6 tokens."""
    for step in (7, 10):
        assert run_a.records[step]["tokens_per_s"] == 6 * 6


def test_each_progress_line_carries_the_rate_of_its_chunk(run_b):
    """A chunk's losses reach the host together: each line shows its chunk's steps × 6 × 6
    tokens over the chunk's one second, not the time between two steps fetched together.
    Run B's lines: steps 2 and 4 (chunks of one step), 6 (two), 8 (one)."""
    rates = {int(step): float(rate.replace(",", "")) for step, rate in re.findall(
        r"^step +(\d+) \| loss .* \| ([\d,]+) tokens/s$", run_b.stdout, re.M)}
    assert rates == {2: 36, 4: 36, 6: 72, 8: 36}


def test_the_run_ends_at_num_steps(run_a, run_b):
    for run, end in ((run_a, 10), (run_b, 9)):
        assert max(run.records) == load_run(run.workdir).step == end
    assert max(run_a.events["step_loss"]) == 10  # run A logs every step: none past the end


def test_loss_plot_off_draws_no_loss_png(run_a):
    """The tiny config turns train.loss_plot off; test_report's run draws it."""
    assert not (run_a.workdir / "loss.png").exists()


def test_evaluations_come_every_eval_interval_steps_and_at_the_end(run_a, run_b):
    for run, end in ((run_a, 10), (run_b, 9)):
        assert sorted(run.records) == sorted(run.events["val_loss"]) == [0, 7, end]


# --- train.log_interval, checkpoint_every, keep_checkpoints, steps_per_call, grad_accum_steps --


def test_progress_lines_and_step_losses_come_every_log_interval_steps(run_a, run_b):
    assert run_a.progress_steps() == list(range(1, 11))
    assert run_b.progress_steps() == [2, 4, 6, 8]
    assert sorted(run_b.events["step_loss"]) == sorted(run_b.events["step_grad_norm"]) == [
        2, 4, 6, 8]


def test_checkpoints_every_checkpoint_every_steps_keeping_the_last_keep_checkpoints(run_a, run_b):
    def kept(run):
        return sorted(int(p.name) for p in (run.workdir / "checkpoints").iterdir()
                      if p.name.isdigit())

    assert kept(run_a) == list(range(1, 11))
    assert kept(run_b) == [8, 9]  # saved at 4, 8 and the last step, 9


def test_steps_per_call_and_grad_accum_steps_change_the_layout_not_the_training(run_a, run_b):
    """Run B takes two steps per call (the first three calls take one, see run_b; those
    ending at 4, 7, 8 and 9 are cut to one) and splits each batch of 6 into 3 micro-batches
    of 2: the compiled chunk takes its offsets as such, and its losses, gradient norms and
    params are run A's. Tolerance: accumulating three partial gradients changes float32
    summation order (measured: params within 1.2e-7, one ulp of a LayerNorm gain; losses and
    norms within 1.2e-7 relative; two steps per call alone are bit-identical)."""
    assert run_a.chunk_starts_shape == (1, 1, 1, 6)  # (devices, steps, micro-batches, rows)
    assert run_b.chunk_starts_shape == (1, 2, 3, 2)
    assert "the first 1 step(s) took" in run_b.stdout
    for tag in ("step_loss", "step_grad_norm"):
        for step in (2, 4, 6, 8):  # 4 and 6 the second step of their call
            assert run_b.events[tag][step] == pytest.approx(run_a.events[tag][step], rel=1e-6)
    assert run_b.records[7]["val_loss"] == pytest.approx(run_a.records[7]["val_loss"], rel=1e-6)
    assert_trees_equal(run_b.params(9), run_a.params(9), atol=1e-6)


# --- sample.max_new_tokens (and block_size in sampling) ----------------------------------------


def test_every_evaluation_writes_a_sample_of_max_new_tokens_characters(run_a, run_b):
    """The sample of the final params, drawn with seed 0 from a newline at the run's block
    size: 13 characters, more than a block of 6."""
    samples = run_b.workdir / "samples"
    assert sorted(p.name for p in samples.iterdir()) == [
        "step_000000.txt", "step_000007.txt", "step_000009.txt"]
    for path in samples.iterdir():
        assert len(path.read_text(encoding="utf-8")) == 13 + 1
    final = load_run(run_b.workdir)
    expected = sample_texts(final.model, final.params, final.tokenizer, 6, max_new_tokens=13)[0]
    assert (samples / "step_000009.txt").read_text(encoding="utf-8") == expected + "\n"
    assert not (run_a.workdir / "samples").exists()  # max_new_tokens = 0: none


# --- data.path, with model.dropout in training ---------------------------------------------------


@pytest.fixture(scope="module")
def other_corpus(tmp_path_factory):
    """A 7-character corpus, and a 2-step run on it with dropout 0.25, seed 11 and batches
    of 6 in 2 micro-batches (a dropout mask must follow its example's row in the batch)."""
    rng = np.random.default_rng(0)
    text = "".join(rng.choice(list("abcde \n"), size=3000, p=[.3, .2, .2, .1, .1, .05, .05]))
    root = tmp_path_factory.mktemp("corpus")
    path = root / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    config = _run_config(seed=11, num_steps=2, eval_interval=2, checkpoint_every=2,
                         keep_checkpoints=1, grad_accum_steps=2)
    config.model.dropout = 0.25
    config.data.path = str(path)
    return text, _train(config, root / "run")


def test_the_run_reads_its_vocabulary_and_batches_from_data_path(other_corpus):
    text, run = other_corpus
    tokenizer, _, val_ids = split_corpus(text)
    assert json.loads((run.workdir / "vocab.json").read_text())["chars"] == list("\n abcde")
    params = run.params(2)
    assert params["token_embedding_table"]["embedding"].shape == (7, 16)
    t, T = run.config.train, run.config.model.block_size
    model = build_model(run.config.model, tokenizer.vocab_size)
    batches = [get_batch(val_ids, T, t.batch_size, t.seed, eval_stream(VAL), i)
               for i in range(t.eval_iters)]
    assert run.records[2]["val_loss"] == pytest.approx(mean_loss(model, params, batches),
                                                       rel=LOSS_RTOL)


def test_dropout_is_on_in_the_train_step_and_off_in_every_evaluation(other_corpus):
    """Step 1's loss is the training-mode loss of the initial params on batch 0, example r
    under the dropout key of (seed, step 0, its row r in the whole batch), and differs from
    the eval-mode loss there; the val_loss and the evaluated train_loss at step 0 are the
    eval-mode losses of their splits' evaluation batches, dropout off."""
    text, run = other_corpus
    tokenizer, train_ids, val_ids = split_corpus(text)
    t, T = run.config.train, run.config.model.block_size
    model = build_model(run.config.model, tokenizer.vocab_size)
    params = initial_params(model, t.seed, T)
    batch = [get_batch(train_ids, T, t.batch_size, t.seed, TRAIN_STREAM, 0)]
    step_key = jax.random.fold_in(jax.random.key(t.seed), 0)
    trained = mean_loss(model, params, batch,
                        dropout_keys=lambda row: jax.random.fold_in(step_key, row))
    assert run.events["step_loss"][1] == pytest.approx(trained, rel=LOSS_RTOL)
    assert abs(trained - mean_loss(model, params, batch)) > 10 * LOSS_RTOL * trained
    for split, ids in ((VAL, val_ids), (TRAIN, train_ids)):  # both evaluations, dropout off
        batches = [get_batch(ids, T, t.batch_size, t.seed, eval_stream(split), i)
                   for i in range(t.eval_iters)]
        name = "val_loss" if split == VAL else "train_loss"
        assert run.records[0][name] == pytest.approx(mean_loss(model, params, batches),
                                                      rel=LOSS_RTOL)


# --- model.dropout, fused_dropout, init, compute_dtype, query_chunk, context, mlp_hidden -------


def _idx(shape, seed=0, vocab=V):
    return jax.random.randint(jax.random.key(seed), shape, 0, vocab)


def _intermediates(model, idx, train: bool) -> dict:
    """Every module's output in block_0, in training (dropout key 1) or eval mode."""
    params = initial_params(model, 0, idx.shape[1])
    _, state = _jitted(model)[1]({"params": params}, idx, train=train,
                                 rngs={"dropout": jax.random.key(1)},
                                 capture_intermediates=True, mutable=("intermediates",))
    return jax.tree.map(np.asarray, state["intermediates"]["block_0"])


@pytest.mark.parametrize("fused", [False, True], ids=["bernoulli", "fused"])
def test_dropout_zeroes_the_rate_of_activations_and_scales_the_rest(fused):
    """After each residual projection, and on the attention weights: at position 0 a head's
    single weight is exactly 1, so its output is either v / (1 - rate) or all zeros. The
    dropped fraction must be within 5 binomial standard deviations of the rate."""
    rate, B = 0.3, 256
    idx = _idx((B, 8))

    def assert_rate(dropped: np.ndarray):
        sigma = math.sqrt(rate * (1 - rate) / dropped.size)
        assert abs(dropped.mean() - rate) < 5 * sigma, dropped.mean()

    model = build_model(tiny_config(dropout=rate, fused_dropout=fused, n_layer=1,
                                    n_embd=32).model, V)
    block = _intermediates(model, idx, train=True)
    for layer in ("sa", "ffwd"):
        x, (y,) = block[layer]["proj"]["__call__"][0], block[layer]["Dropout_0"]["__call__"]
        dropped = y == 0
        assert_rate(dropped)
        np.testing.assert_allclose(y[~dropped], x[~dropped] / (1 - rate), rtol=1e-6)  # 1 division

    heads_only = build_model(tiny_config(dropout=rate, fused_dropout=fused, n_layer=1, n_embd=32,
                                         n_head=8, projections=False, ffwd=False).model, V)
    out_BxHxD, v_BxHxD = (_intermediates(heads_only, idx, train)["sa"]["__call__"][0][:, 0]
                          .reshape(B, 8, 4) for train in (True, False))
    dropped = np.all(out_BxHxD == 0, axis=-1)
    assert_rate(dropped)
    # (1 / (1 - rate)) · v rounds differently from v / (1 - rate): a few ulps
    np.testing.assert_allclose(out_BxHxD[~dropped], v_BxHxD[~dropped] / (1 - rate), rtol=1e-5)


def test_fused_dropout_hashes_the_mask_instead_of_drawing_it():
    """Both draw Bernoulli masks at the rate (above); the fused one computes its bits in the
    elementwise code, without one random draw the size of the activations."""
    def random_draws(fused: bool) -> set:
        model = build_model(tiny_config(dropout=0.3, fused_dropout=fused).model, V)
        params = param_shapes(model, 8)
        jaxpr = jax.make_jaxpr(lambda p: model.apply(
            {"params": p}, jnp.zeros((4, 8), jnp.int32), train=True,
            rngs={"dropout": jax.random.key(0)}))(params).jaxpr
        return {e.outvars[0].aval.shape for e in _equations(jaxpr)
                if e.primitive.name == "random_bits"}

    # a mask per residual projection (B, T, C) and for the weights of both heads (H, B, T, T)
    assert random_draws(fused=False) == {(4, 8, 16), (2, 4, 8, 8)}
    assert random_draws(fused=True) == {(2,), (2, 2)}  # 2-word hash keys (a pair per head)


def _leaves(params) -> dict:
    """{'block_0/ffwd/fc/kernel': leaf} of a params tree (of arrays, or of shapes)."""
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    return {"/".join(k.key for k in path): leaf for path, leaf in flat}


def _assert_normal(w, std: float, name: str):
    """Sample std within 5 standard errors (relative SE of a normal's std: 1/sqrt(2n))."""
    w = np.asarray(w)
    assert abs(w.std() / std - 1) < 5 / math.sqrt(2 * w.size), (name, w.std(), std)
    assert abs(w.mean()) < 5 * std / math.sqrt(w.size), name


def _assert_uniform(w, bound: float, name: str):
    """U(-bound, bound): nothing beyond it, its edge reached (n >= 4096 draws: P(max < 0.99
    bound) < 1e-17), and the std of a uniform, bound / sqrt(3), within 5 standard errors."""
    w = np.asarray(w)
    assert np.abs(w).max() <= bound * (1 + 1e-6), name  # float32 rounding of the bound
    assert np.abs(w).max() > 0.99 * bound, name
    # relative SE of a uniform's sample std: sqrt((9/5 - 1) / (4n)) = 1/sqrt(5n)
    assert abs(w.std() * math.sqrt(3) / bound - 1) < 5 / math.sqrt(5 * w.size), name


GPT_INIT = dict(block_size=16, n_embd=64, n_head=4, n_layer=2)  # >= 4096 weights a matrix


def test_gpt2_init_is_normal_002_with_residual_projections_scaled():
    params = _leaves(initial_params(build_model(tiny_config(**GPT_INIT).model, V), 0, 16))
    residual_std = 0.02 / math.sqrt(2 * 2)
    for name, w in params.items():
        if name.endswith("bias"):
            assert np.all(np.asarray(w) == 0), name
        elif name.endswith("scale"):
            assert np.all(np.asarray(w) == 1), name
        else:
            _assert_normal(w, residual_std if name.endswith("proj/kernel") else 0.02, name)


def test_torch_init_is_uniform_by_fan_in_with_unit_normal_embeddings():
    params = _leaves(initial_params(build_model(tiny_config(init="torch", **GPT_INIT).model, V),
                                    0, 16))
    fan_in = {"fc": 64, "ffwd/proj": 256, "sa/proj": 64, "query": 64, "key": 64, "value": 64,
              "lm_head": 64}
    for name, w in params.items():
        if name.endswith("embedding"):
            _assert_normal(w, 1.0, name)
        elif name.endswith("kernel"):
            (layer,) = [k for k in fan_in if f"{k}/kernel" in name]
            _assert_uniform(w, 1 / math.sqrt(fan_in[layer]), name)


@pytest.mark.parametrize("init", ["gpt2", "torch"])
def test_window_models_follow_the_init_style(init):
    hidden = 256  # enough draws for the statistics
    table = _leaves(initial_params(build_model(tiny_config(name="ngram", context=2, init=init)
                                               .model, V), 0, 8))["table"]
    mlp = _leaves(initial_params(build_model(tiny_config(name="mlp", context=4, n_embd=16,
                                                         mlp_hidden=hidden, init=init).model, V),
                                 0, 8))
    if init == "gpt2":
        for name, w in (("table", table), ("embedding", mlp["token_embedding_table/embedding"]),
                        ("hidden", mlp["hidden/kernel"]), ("lm_head", mlp["lm_head/kernel"])):
            _assert_normal(w, 0.02, name)
    else:
        _assert_normal(table, 1.0, "table")
        _assert_normal(mlp["token_embedding_table/embedding"], 1.0, "embedding")
        _assert_uniform(mlp["hidden/kernel"], 1 / math.sqrt(4 * 16), "hidden")
        _assert_uniform(mlp["lm_head/kernel"], 1 / math.sqrt(hidden), "lm_head")


def _equations(jaxpr):
    """Every equation of a jaxpr and of the jaxprs nested in it (scans, vmaps, pjits)."""
    for eqn in jaxpr.eqns:
        yield eqn
        for param in eqn.params.values():
            for sub in param if isinstance(param, (list, tuple)) else [param]:
                if isinstance(sub, jax_core.ClosedJaxpr):
                    yield from _equations(sub.jaxpr)
                elif isinstance(sub, jax_core.Jaxpr):
                    yield from _equations(sub)


def _matmuls(model, idx) -> list[tuple[tuple, tuple]]:
    """(operand dtypes, output shape) of every dot_general of the forward pass (traced only)."""
    params = param_shapes(model, idx.shape[1])
    jaxpr = jax.make_jaxpr(lambda p: model.apply({"params": p}, idx))(params).jaxpr
    return [(tuple(v.aval.dtype for v in e.invars), e.outvars[0].aval.shape)
            for e in _equations(jaxpr) if e.primitive.name == "dot_general"]


def test_bfloat16_runs_the_block_matmuls_in_bfloat16_and_keeps_params_and_loss_float32():
    idx, targets = _idx((4, 8)), _idx((4, 8), seed=1)
    f32 = build_model(tiny_config().model, V)
    bf16 = build_model(tiny_config(compute_dtype="bfloat16").model, V)
    bf16_dots = [d for d, _ in _matmuls(bf16, idx) if d == (jnp.bfloat16, jnp.bfloat16)]
    # per layer: q, k, v, q·kᵀ, weights·v, attention projection, fc, MLP projection
    assert len(bf16_dots) == 2 * 8
    assert not [d for d, _ in _matmuls(f32, idx) if jnp.bfloat16 in d]
    params = initial_params(bf16, 0, 8)
    assert {p.dtype for p in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
    logits = logits_of(bf16, params, idx)
    assert logits.dtype == np.float32 and cross_entropy(logits, targets).dtype == jnp.float32
    # bfloat16 keeps 8 significant bits (relative rounding up to 2^-9 per operand, accumulated
    # over 2 layers' matmuls): measured 0.11% of the largest logit; 2% leaves room for inputs.
    reference = logits_of(f32, params, idx)
    scale = float(np.abs(reference).max())
    np.testing.assert_allclose(logits, reference, rtol=0, atol=0.02 * scale)
    assert not np.array_equal(logits, reference)


def test_query_chunks_never_form_the_full_score_matrix():
    """T = 12 by chunks of 4: chunk i's scores are (4, 4(i+1)), never (12, 12). (That the
    logits and gradients are unchanged is tests/test_models.py's.)"""
    idx = _idx((2, 12))
    shape = dict(block_size=12, n_embd=18, n_head=3)  # head size 6: no other (4, k) matmul
    chunked = build_model(tiny_config(query_chunk=4, **shape).model, V)
    full = build_model(tiny_config(**shape).model, V)
    scores = {s[-2:] for _, s in _matmuls(chunked, idx) if len(s) == 4 and s[-2] == 4}
    assert scores == {(4, 4), (4, 8), (4, 12), (4, 6)}  # (4, 6): the weights times v
    assert (12, 12) not in {s[-2:] for _, s in _matmuls(chunked, idx)}
    assert (12, 12) in {s[-2:] for _, s in _matmuls(full, idx)}


def test_context_and_mlp_hidden_give_the_window_models_their_shapes():
    def shapes(**model):
        config = tiny_config(n_embd=8, **model)
        return {k: v.shape for k, v in _leaves(param_shapes(build_model(config.model, V), 8))
                .items()}

    assert shapes(name="ngram", context=1) == {"table": (V, V)}
    assert shapes(name="mlp", context=5, mlp_hidden=24) == {
        "token_embedding_table/embedding": (V, 8), "hidden/kernel": (5 * 8, 24),
        "hidden/bias": (24,), "lm_head/kernel": (24, V), "lm_head/bias": (V,)}


@pytest.mark.parametrize("name, context", [("ngram", 1), ("mlp", 5)])
def test_position_t_reads_exactly_the_last_context_tokens(name, context):
    """Changing the token at s changes the logits at t if and only if t - context < s <= t."""
    T = 8
    model = build_model(tiny_config(name=name, context=context, n_embd=8, mlp_hidden=16).model,
                        V)
    forward = functools.partial(logits_of, model, initial_params(model, 0, T))
    idx = np.random.default_rng(0).integers(0, V, (1, T))
    logits_TxV = forward(idx)[0]
    changed_TxT = np.zeros((T, T), bool)
    for s in range(T):
        other = idx.copy()
        other[0, s] = (idx[0, s] + 1) % V
        changed_TxT[:, s] = np.any(forward(other)[0] != logits_TxV, axis=-1)
    np.testing.assert_array_equal(changed_TxT,
                                  np.tri(T, dtype=bool) & ~np.tri(T, k=-context, dtype=bool))


# --- train.learning_rate, lr_schedule, warmup_steps, min_learning_rate, beta1, beta2,
# weight_decay, grad_clip: the optimizer the step applies ----------------------------------


@functools.cache
def _grad(model):
    """The gradient of the mean next-token loss of a batch, compiled once per model."""
    return jax.jit(jax.grad(lambda params, x, y: cross_entropy(
        model.apply({"params": params}, x), y)))


def _replay(config: ml_collections.ConfigDict, train: ml_collections.ConfigDict, train_ids,
            num_steps: int) -> list:
    """The params after each of the first num_steps steps of config's run, worked out here:
    the init of its seed, updated by make_optimizer(train) with the gradient of each step's
    batch (the run's seed, batch size and block)."""
    import optax

    from gpt_jax.optim import make_optimizer

    t, T = config.train, config.model.block_size
    model = build_model(config.model, V)
    optimizer = make_optimizer(train)
    params = initial_params(model, t.seed, T)
    state, path = optimizer.init(params), []
    for step in range(num_steps):
        x, y = get_batch(train_ids, T, t.batch_size, t.seed, TRAIN_STREAM, step)
        updates, state = optimizer.update(_grad(model)(params, x, y), state, params)
        params = optax.apply_updates(params, updates)
        path.append(params)
    return path


def test_the_step_applies_the_optimizer_its_train_fields_make(tmp_path, shakespeare_ids):
    """Five steps of AdamW under a cosine schedule with warmup, other betas, decay and clip
    than the defaults: the params after each are the init's, updated step by step by
    make_optimizer(train) with the gradient of that step's batch. A field the step ignored
    (its default in its place) moves them by more than the tolerance: checked for each."""
    settings = dict(learning_rate=3e-3, lr_schedule="cosine", warmup_steps=2,
                    min_learning_rate=5e-4, beta1=0.7, beta2=0.9, weight_decay=0.5,
                    grad_clip=0.05, num_steps=5, eval_interval=5)
    config = _run_config(**settings)
    run = _train(config, tmp_path)
    _, train_ids, _ = shakespeare_ids
    t = config.train

    for step, params in enumerate(_replay(config, t, train_ids, t.num_steps), 1):
        assert_trees_equal(run.params(step), params, atol=1e-6)
    for field, default in (("learning_rate", 1e-3), ("lr_schedule", "constant"),
                           ("warmup_steps", 0), ("min_learning_rate", 1e-4), ("beta1", 0.9),
                           ("beta2", 0.999), ("weight_decay", 0.01), ("grad_clip", 1.0)):
        ignored = config.train.copy_and_resolve_references()
        ignored[field] = default
        last = _replay(config, ignored, train_ids, t.num_steps)[-1]
        gap = max(float(np.abs(a - b).max()) for a, b in
                  zip(jax.tree.leaves(last), jax.tree.leaves(run.params(t.num_steps)),
                      strict=True))
        assert gap > 1e-5, field


# --- train.optimizer=muon: muon_learning_rate, muon_weight_decay, muon_ns_steps --------------


@pytest.fixture(scope="module")
def muon_run(tmp_path_factory) -> Run:
    """Two steps of Muon at a rate, decay and Newton–Schulz iterations other than the
    defaults, on a cosine over the two steps (the second at a lower rate than the first)."""
    settings = dict(optimizer="muon", muon_learning_rate=0.05, muon_weight_decay=0.5,
                    muon_ns_steps=3, num_steps=2, eval_interval=2, lr_schedule="cosine",
                    min_learning_rate=2e-4)
    config = _run_config(**settings)
    config.model.n_layer = 1  # the replays run Muon op by op: one block's matrices, not two
    return _train(config, tmp_path_factory.mktemp("muon"))


def test_the_step_applies_the_muon_fields_of_train(muon_run, shakespeare_ids):
    """The Muon run's params after each step are make_optimizer(train)'s, replayed step by
    step. Each field at its default, the first step (the same gradient) tells what it did: the
    rate scaled the Muon matrices' update and the decay took rate · decay · param off them, and
    the iterations changed their update; the AdamW leaves moved as in the run every time."""
    from gpt_jax.optim import muon_labels

    run, config = muon_run, muon_run.config
    _, train_ids, _ = shakespeare_ids
    t = config.train
    for step, params in enumerate(_replay(config, t, train_ids, t.num_steps), 1):
        assert_trees_equal(run.params(step), params, atol=1e-6)

    init = initial_params(build_model(config.model, V), t.seed, config.model.block_size)
    labels = jax.tree.leaves(muon_labels(init))
    assert labels.count("muon") == 6 and "adamw" in labels  # query, key, value, proj, fc, proj
    leaves = list(zip(labels, *map(jax.tree.leaves, (init, run.params(1))), strict=True))

    def first_step_with(field, value) -> list:
        ignored = config.train.copy_and_resolve_references()
        ignored[field] = value
        replayed = jax.tree.leaves(_replay(config, ignored, train_ids, 1)[0])
        muon = []
        for (label, p0, ran), other in zip(leaves, replayed, strict=True):
            if label == "adamw":
                np.testing.assert_allclose(other, ran, rtol=0, atol=1e-6, err_msg=field)
            else:
                muon.append((p0, ran, other))
        return muon

    rate, decay = t.muon_learning_rate, t.muon_weight_decay
    for p0, ran, other in first_step_with("muon_learning_rate", 0.02):
        np.testing.assert_allclose(ran - p0, (other - p0) * rate / 0.02, rtol=0, atol=2e-6)
        assert float(np.abs(ran - other).max()) > 1e-3
    for p0, ran, other in first_step_with("muon_weight_decay", 0.0):
        np.testing.assert_allclose(ran, other - rate * decay * p0, rtol=0, atol=1e-6)
        assert float(np.abs(ran - other).max()) > 1e-4
    for _, ran, other in first_step_with("muon_ns_steps", 5):
        assert float(np.abs(ran - other).max()) > 1e-3


def test_a_muon_run_reports_the_muon_matrices_rate_beside_adamw_s(muon_run, run_a):
    """metrics.jsonl, TensorBoard and the progress lines of a Muon run show muon_lr, the
    schedule at muon_learning_rate, beside AdamW's lr: each of the update that ended at its
    step (the cosine moves it from the first update to the second). An AdamW run's show lr
    alone, as they always did."""
    from gpt_jax.optim import learning_rate_schedule

    t = muon_run.config.train
    adamw, muon = learning_rate_schedule(t), learning_rate_schedule(t, t.muon_learning_rate)
    assert float(muon(1)) < float(muon(0))  # a rate read at the wrong update shows
    assert muon_run.records[0]["lr"] is muon_run.records[0]["muon_lr"] is None  # no update yet
    assert 0 not in muon_run.events["muon_lr"]
    for step, record in list(muon_run.records.items())[1:]:
        update = step - 1
        assert record["lr"] == pytest.approx(float(adamw(update)), rel=1e-6)
        assert record["muon_lr"] == pytest.approx(float(muon(update)), rel=1e-6)
        assert muon_run.events["muon_lr"][step] == pytest.approx(record["muon_lr"], rel=1e-6)
    assert sorted(muon_run.records) == [0, 2]
    # (step 1, the first call's, is the start-up's time: its line gives no tokens/s)
    lines = re.findall(r"^step +(\d+) \| loss [\d.]+ \| lr (\S+) \| muon lr ([\d.e+-]+)"
                       r"(?: \| [\d,]+ tokens/s)?$", muon_run.stdout, re.M)
    assert [(int(s), float(lr), float(m)) for s, lr, m in lines] == [
        (s, float(f"{float(adamw(s - 1)):.2e}"), float(f"{float(muon(s - 1)):.2e}"))
        for s in (1, 2)]
    assert all(set(r) == {"step", "train_loss", "val_loss", "tokens_per_s", "lr", "grad_norm"}
               for r in run_a.records.values())
    assert "muon_lr" not in run_a.events and "muon" not in run_a.stdout
    assert len(re.findall(r"^step +\d+ \| loss [\d.]+ \| lr [\d.e+-]+ \| [\d,]+ tokens/s$",
                          run_a.stdout, re.M)) == 9
    assert re.search(r"^step +1 \| loss [\d.]+ \| lr [\d.e+-]+$", run_a.stdout, re.M)
