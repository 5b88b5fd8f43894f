"""The switches of the fast public GPT recipes (RoPE, RMSNorm, QK-norm, ReLU², SwiGLU, no
biases, zero-initialized projections, a logit soft-cap) and the Muon optimizer: each switch
alone and all together against the NumPy formulas (tests/reference.py), causal by gradient,
cached sampling equal to uncached; RoPE's geometry; Muon's partition and its update; and a
killed and resumed modern run equal to a straight one, bit for bit.

Tolerance: as in test_lecture.py, the model computes in float32 and the reference in float64:
1e-5 relative plus 1e-5 absolute holds with a wide margin, while every break these tests exist
for (a missing rotation, gain, gate or bias) moves the outputs by 1e-2 or more. Muon's five
Newton–Schulz iterations in float32 land within 1e-6 of float64's (entries ~0.1): 1e-5.
"""

import functools
import math
import signal

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
import reference as ref

from conftest import REPO, assert_causal, run_python, tiny_config
from gpt_jax.generation import decode_step, generate, prefill
from gpt_jax.kill_points import ENV
from gpt_jax.models import Block, Head, build_model
from gpt_jax.models.feedforward import FeedForward
from gpt_jax.models.gpt import GPTConfig
from gpt_jax.models.rope import rotate
from gpt_jax.optim import learning_rate_schedule, make_optimizer, muon_labels
from gpt_jax.restore import load_run

V, T = 65, 8
TOL = dict(rtol=1e-5, atol=1e-5)  # float32 against float64, see the module docstring

MODERN = dict(pos_emb="rope", norm="rmsnorm", qk_norm=True, activation="swiglu", bias=False,
              zero_init_proj=True, logit_softcap=15.0)
SWITCHES = {
    "rope": dict(pos_emb="rope"),
    "rope_base_100": dict(pos_emb="rope", rope_base=100.0),
    "no_pos_emb": dict(pos_emb="none"),
    "rmsnorm": dict(norm="rmsnorm"),
    "qk_norm": dict(qk_norm=True),
    "relu2": dict(activation="relu2"),
    "swiglu": dict(activation="swiglu"),
    "no_bias": dict(bias=False),
    "zero_init_proj": dict(zero_init_proj=True),
    "softcap": dict(logit_softcap=2.0),
    "modern": MODERN,
    "modern_tied_relu2_chunked": {**MODERN, "activation": "relu2", "tie_embeddings": True,
                                  "norm": "layernorm", "query_chunk": 3},
}


def _model(**switches):
    return build_model(tiny_config(**switches).model, V)


def _params(model, seed=0):
    """Init, then moved far from it (as test_lecture's _randomize): a zero projection, a unit
    gain or a zero bias would hide its own omission, and a zero-initialized block would hide
    the past from the causality test."""
    params = model.init(jax.random.key(seed), jnp.zeros((1, T), jnp.int32))["params"]
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    return jax.tree.unflatten(tree, [w + 0.3 * jax.random.normal(k, w.shape)
                                     for w, k in zip(leaves, keys, strict=True)])


def _idx(shape=(2, T), seed=3):
    return np.asarray(jax.random.randint(jax.random.key(seed), shape, 0, V))


@pytest.mark.parametrize("switches", SWITCHES.values(), ids=SWITCHES.keys())
def test_each_switch_equals_its_formula_and_cannot_see_the_future(switches):
    """The logits equal tests/reference.py's; d loss_t / d embedding_s is exactly 0 for s > t
    and non-zero for s <= t (test_models.py's causality test, over the new switches)."""
    config = tiny_config(**switches).model
    model = build_model(config, V)
    params, idx = _params(model), _idx()
    np.testing.assert_allclose(model.apply({"params": params}, idx),
                               ref.gpt_logits(params, idx, config), **TOL)

    targets = _idx(seed=4)
    perturbations = model.init(jax.random.key(0), idx)["perturbations"]

    def loss_by_position(perturbations):  # the loss at each position t, averaged over the batch
        logits = model.apply({"params": params, "perturbations": perturbations}, idx)
        return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean(0)

    zeros = jax.tree.map(jnp.zeros_like, perturbations)
    assert_causal(jax.jacrev(loss_by_position)(zeros)["embeddings"])  # (T, B, T, C)


@pytest.mark.parametrize("switches", SWITCHES.values(), ids=SWITCHES.keys())
def test_cached_decode_equals_the_full_forward_at_every_step(switches):
    """The KV cache holds rotated, normalized keys: decoding token by token from a prefill of
    every prompt length gives the logits of the whole sequence run at once."""
    model = _model(**switches)
    params = _params(model)
    run_prefill = jax.jit(lambda w, n: prefill(model, params, w, n))
    run_decode = jax.jit(lambda c, tok, pos: decode_step(model, params, c, tok, pos))
    seq = _idx(seed=5).astype(np.int32)
    full_TxBxV = np.asarray(model.apply({"params": params}, seq)).swapaxes(0, 1)  # causal
    for prompt_len in (1, 3, T - 1):
        logits, cache = run_prefill(np.where(np.arange(T) < prompt_len, seq, 0), prompt_len)
        for pos in range(prompt_len, T + 1):
            np.testing.assert_allclose(logits, full_TxBxV[pos - 1], rtol=1e-5, atol=1e-5)
            if pos < T:
                logits, cache = run_decode(cache, seq[:, pos], pos)


@pytest.mark.parametrize("switches", [SWITCHES["rope"], MODERN], ids=["rope", "modern"])
def test_greedy_cached_and_uncached_generate_the_same_text_past_the_block(switches):
    """Past block_size the cache slides and prefills again from position 0: with RoPE only
    offsets matter, so it agrees with the uncached path's last block_size tokens."""
    model = _model(**switches)
    params = _params(model)
    window = np.zeros((2, T), np.int32)
    window[:, :5] = _idx((2, 5), seed=6)
    kwargs = dict(temperature=1.0, top_k=1, top_p=1.0, block_size=T, max_new_tokens=3 * T)
    cached = generate(model, params, window, 5, jax.random.key(0), use_cache=True, slide=1,
                      **kwargs)
    uncached = generate(model, params, window, 5, jax.random.key(0), use_cache=False, **kwargs)
    np.testing.assert_array_equal(cached, uncached)
    assert len(np.unique(np.asarray(cached))) > 1  # not a constant sequence


@pytest.mark.parametrize("switches", [{}, MODERN], ids=["lecture", "modern"])
def test_fused_decode_gives_the_head_by_head_logits_at_every_step(switches):
    """model.fused_decode (models/fused_heads.py) reads the Heads' parameters, so the same
    params decode to the same logits, from the prefill through every cached step; its cache
    keeps the keys as (B, H, D, T), the Heads' as (H, B, T, D)."""
    logits_by_path, caches = [], []
    params = _params(_model(**switches))
    seq = _idx(seed=7).astype(np.int32)
    for fused in (False, True):
        model = _model(**switches, fused_decode=fused)
        run_decode = jax.jit(lambda c, tok, pos, m=model: decode_step(m, params, c, tok, pos))
        logits, cache = prefill(model, params, np.where(np.arange(T) < 3, seq, 0), 3)
        steps = [logits]
        for pos in range(3, T):
            logits, cache = run_decode(cache, seq[:, pos], pos)
            steps.append(logits)
        logits_by_path.append(np.stack(steps))
        caches.append(cache["block_0"]["sa"]["heads"])
    np.testing.assert_allclose(logits_by_path[1], logits_by_path[0], rtol=1e-5, atol=1e-5)
    m = tiny_config().model
    B, H, D = seq.shape[0], m.n_head, m.n_embd // m.n_head
    assert caches[0]["cache"]["cached_key"].shape == (H, B, T, D)
    assert caches[1]["cached_key"].shape == (B, H, D, T)


def test_rope_rotates_each_pair_by_position_times_its_frequency():
    """Equal to the formula: within float32 rounding at the positions of a block, and at
    position p within the error of a float32 angle p·θ (p · 6e-8 radians)."""
    x = np.asarray(jax.random.normal(jax.random.key(0), (3, 10, 16)))
    for positions, atol in ((np.array([0, 1, 2, 5, 7, 11, 31, 63, 64, 255]), 1e-5),
                            (np.arange(10) * 1000, 1e-3)):
        for base in (10000.0, 100.0):
            np.testing.assert_allclose(rotate(x, positions, base),
                                       ref.rope(x, positions, base), rtol=0, atol=atol)
    np.testing.assert_array_equal(rotate(x, np.zeros(10, np.int32)), x)  # position 0: identity


def test_rope_preserves_norms_and_scores_depend_only_on_the_offset():
    """|R_i q| = |q| for every vector, and (R_i q)·(R_j k) = (R_{i+s} q)·(R_{j+s} k)."""
    q, k = (np.asarray(jax.random.normal(jax.random.key(s), (4, 6, 16))) for s in (1, 2))
    positions = np.array([0, 3, 8, 17, 40, 99])
    rq = np.asarray(rotate(q, positions))
    np.testing.assert_allclose(np.linalg.norm(rq, axis=-1), np.linalg.norm(q, axis=-1),
                               rtol=1e-6)

    def scores(i, j):  # (B, 6, 6): query at position i + row, key at j + column
        qi = np.asarray(rotate(q, i + np.arange(6)))
        kj = np.asarray(rotate(k, j + np.arange(6)))
        return np.einsum("btd,bsd->bts", qi, kj)

    for i, j in ((0, 0), (5, 2), (1, 9)):
        for s in (1, 13, 50):
            np.testing.assert_allclose(scores(i + s, j + s), scores(i, j), rtol=1e-4, atol=1e-4)
    assert not np.allclose(scores(5, 2), scores(2, 5), atol=1e-2)  # but the offset does


def test_a_rope_head_sees_only_relative_positions():
    """A RoPE head weighs a key by how far it is from the query, never by where the two are:
    the whole sequence moved by `start` keeps every attention weight, while one key at two
    offsets from one query gets two weights (equal without positions). And `start` places
    the tokens: decoded at start=5 after a cache of five, three tokens attend as the ones at
    5, 6, 7 of the whole sequence do (read as 0, 1, 2, their offsets to the cache are wrong).
    (Outside of decoding the causal mask takes the keys at 0, 1, ..., so `start` stays 0.)"""
    def config(pos_emb):
        return GPTConfig(V, block_size=16, n_embd=16, n_head=2, pos_emb=pos_emb, qk_norm=True)

    x = jax.random.normal(jax.random.key(0), (2, 8, 16))
    x = x.at[:, 3].set(x[:, 1])  # one token at offsets 1 and 3 from the query at 0
    params = Head(config("rope"), causal=False).init(jax.random.key(1), x)

    @functools.partial(jax.jit, static_argnums=0)
    def attend(pos_emb, start=0):
        out, state = Head(config(pos_emb), causal=False).apply(
            params, x, start=start, mutable=["intermediates"])
        return out, state["intermediates"]["attention_weights"][0]  # (B, T, T)

    out, wei = attend("rope", 0)
    for start in (3, 10):
        moved_out, moved_wei = attend("rope", start)
        np.testing.assert_allclose(moved_wei, wei, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(moved_out, out, rtol=1e-4, atol=1e-5)
    assert not np.allclose(wei[:, 0, 1], wei[:, 0, 3], rtol=1e-2, atol=0)
    _, blind = attend("none")
    np.testing.assert_array_equal(blind[:, 0, 1], blind[:, 0, 3])
    assert not np.allclose(blind, wei, atol=1e-3)

    decoder = Head(config("rope"), decode=True)
    whole = jax.jit(Head(config("rope")).apply)(params, x)  # causal, from position 0
    decode = jax.jit(functools.partial(decoder.apply, mutable=["cache"]))
    cache = jax.jit(decoder.init)(jax.random.key(1), x)["cache"]  # empty: zeros
    _, cache = decode({**params, "cache": cache}, x[:, :5], start=0)
    decoded, _ = decode({**params, **cache}, x[:, 5:], start=5)
    np.testing.assert_allclose(decoded, whole[:, 5:], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n_embd", [32, 128, 384])
def test_swiglu_has_the_parameters_of_the_relu_mlp(n_embd):
    """Three matrices of width round(2/3·4·C) against two of 4·C: within 1%."""
    def count(activation):
        ffwd = FeedForward(GPTConfig(V, n_embd=n_embd, activation=activation))
        params = jax.eval_shape(ffwd.init, jax.random.key(0), jnp.zeros((1, 1, n_embd)))
        return sum(math.prod(p.shape) for p in jax.tree.leaves(params))

    assert set(jax.eval_shape(FeedForward(GPTConfig(V, activation="swiglu")).init,
                              jax.random.key(0), jnp.zeros((1, 1, 32)))["params"]) \
        == {"fc", "gate", "proj"}
    assert abs(count("swiglu") / count("relu") - 1) < 0.01


def test_zero_init_proj_starts_every_block_as_the_identity():
    model = _model(zero_init_proj=True)
    params = model.init(jax.random.key(0), jnp.zeros((1, T), jnp.int32))["params"]
    for i in range(2):
        for sublayer in ("sa", "ffwd"):
            assert not np.any(params[f"block_{i}"][sublayer]["proj"]["kernel"])
    x = jax.random.normal(jax.random.key(1), (2, T, 16))
    block = Block(model.config)
    np.testing.assert_array_equal(block.apply({"params": params["block_0"]}, x), x)
    assert np.any(_model().init(jax.random.key(0), jnp.zeros((1, T), jnp.int32))
                  ["params"]["block_0"]["sa"]["proj"]["kernel"])  # the default is not zero


@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
def test_without_bias_no_leaf_is_a_bias(norm):
    params = jax.eval_shape(_model(bias=False, norm=norm).init, jax.random.key(0),
                            jnp.zeros((1, T), jnp.int32))["params"]
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    assert paths and not [p for p in paths if "bias" in p]
    with_bias = jax.eval_shape(_model(norm=norm).init, jax.random.key(0),
                               jnp.zeros((1, T), jnp.int32))["params"]
    assert "bias" in with_bias["lm_head"] and ("bias" in with_bias["ln_f"]) == (norm == "layernorm")


def test_softcap_bounds_the_logits_and_leaves_small_ones_alone():
    cap = 5.0
    capped, raw = _model(logit_softcap=cap), _model()
    params = raw.init(jax.random.key(0), jnp.zeros((1, T), jnp.int32))["params"]
    idx = _idx()
    small, small_raw = capped.apply({"params": params}, idx), raw.apply({"params": params}, idx)
    assert np.abs(small_raw).max() < 0.5  # at init the logits are small: tanh(z) ≈ z − z³/3
    np.testing.assert_allclose(small, small_raw, rtol=0.01, atol=0)
    big = jax.tree.map(lambda p: 50 * p, params)
    logits_big_raw = np.asarray(raw.apply({"params": big}, idx))
    logits_big = np.asarray(capped.apply({"params": big}, idx))
    assert np.abs(logits_big_raw).max() > 10 * cap
    assert np.abs(logits_big).max() <= cap  # float32's tanh reaches 1.0 past |z| ≈ 9


def test_modern_model_in_bfloat16_is_close_to_float32():
    f32, bf16 = _model(**MODERN), _model(**MODERN, compute_dtype="bfloat16")
    params, idx = _params(f32), _idx()
    a, b = f32.apply({"params": params}, idx), bf16.apply({"params": params}, idx)
    assert b.dtype == jnp.float32 and a.shape == b.shape
    gap = np.abs(np.asarray(a) - np.asarray(b)).max()
    assert 0 < gap < 0.05 * np.abs(np.asarray(a)).max()  # 0: the switch did nothing
    products = [e for e in jax.make_jaxpr(lambda p: bf16.apply({"params": p}, idx))(
        params).jaxpr.eqns if e.primitive.name == "dot_general"]
    in_bf16 = [e for e in products if all(v.aval.dtype == jnp.bfloat16 for v in e.invars)]
    # per layer: q, k, v, q·kᵀ, weights·v, attention projection, SwiGLU's fc, gate, projection;
    # the LM head alone stays float32
    assert len(in_bf16) == 2 * 9 and len(products) == 2 * 9 + 1


# --- Muon -------------------------------------------------------------------------------------

MUON_LEAVES = {f"block_{i}/{leaf}" for i in range(2) for leaf in (
    "sa/heads/query/kernel", "sa/heads/key/kernel", "sa/heads/value/kernel", "sa/proj/kernel",
    "ffwd/fc/kernel", "ffwd/gate/kernel", "ffwd/proj/kernel")}
ADAMW_LEAVES = {  # some of the rest, named: embeddings, the head, gains, biases
    "token_embedding_table/embedding", "position_embedding_table/embedding", "lm_head/kernel",
    "lm_head/bias", "ln_f/scale", "ln_f/bias", "block_0/ln1/scale", "block_1/ln2/bias",
    "block_0/sa/heads/query_norm/scale", "block_1/sa/heads/key_norm/scale",
    "block_0/sa/proj/bias", "block_1/ffwd/fc/bias", "block_1/ffwd/gate/bias"}


def _flat(tree) -> dict:
    return {"/".join(k.key for k in path): leaf
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _muon_train(**settings) -> ml_collections.ConfigDict:
    train = tiny_config().train
    train.update(dict(optimizer="muon", learning_rate=1e-2, muon_learning_rate=0.05,
                      lr_schedule="constant", warmup_steps=0, grad_clip=1.0, weight_decay=0.1))
    train.update(settings)
    return train


@pytest.fixture(scope="module")
def muon_model_params():
    """Every kind of leaf: learned positions, QK-norm gains, SwiGLU's gate, biases, a head."""
    model = _model(qk_norm=True, activation="swiglu", n_embd=32, n_head=4)
    return model.init(jax.random.key(0), jnp.zeros((1, T), jnp.int32))["params"]


def test_muon_takes_exactly_the_hidden_matrices(muon_model_params):
    labels = _flat(muon_labels(muon_model_params))
    assert {name for name, label in labels.items() if label == "muon"} == MUON_LEAVES
    assert ADAMW_LEAVES <= {name for name, label in labels.items() if label == "adamw"}
    assert labels.keys() == _flat(muon_model_params).keys()


ATTENTION = ("heads/query/kernel", "heads/key/kernel", "heads/value/kernel", "proj/kernel")
FEED_FORWARD = ("ffwd/fc/kernel", "ffwd/proj/kernel")


@pytest.mark.parametrize("spec, switches, muon", [
    ("mlp.py", {}, {"hidden/kernel"}),  # its lm_head maps to tokens: AdamW
    ("shakespeare_char_cpu.py", dict(tie_embeddings=True, n_layer=1),
     {f"block_0/{leaf}" for leaf in (*(f"sa/{a}" for a in ATTENTION), *FEED_FORWARD)}),
    ("seq2seq.py", dict(n_layer=1),  # the encoder's and the decoder's matrices, cross included
     {*(f"encoder_0/{leaf}" for leaf in (*(f"sa/{a}" for a in ATTENTION), *FEED_FORWARD)),
      *(f"decoder_0/{leaf}" for leaf in (*(f"sa/{a}" for a in ATTENTION),
                                         *(f"cross/{a}" for a in ATTENTION), *FEED_FORWARD))}),
])
def test_muon_takes_the_hidden_matrices_of_every_model_it_may_train(spec, switches, muon):
    """Muon's partition beyond the untied GPT: the MLP, a tied GPT (its one embedding table
    is also its head), the encoder–decoder; every embedding, gain and bias to AdamW."""
    from gpt_jax.config import load_config_file
    from gpt_jax.task import task_model

    config = load_config_file(str(REPO / "configs" / spec))
    config.model.update(switches)
    model, inputs = task_model(config, V)
    rows = [jnp.zeros((1, inputs), jnp.int32)] if isinstance(inputs, int) else [
        jnp.zeros(row.shape, row.dtype) for row in inputs]
    params = jax.eval_shape(lambda: model.init(jax.random.key(0), *rows))["params"]
    labels = _flat(muon_labels(params))
    assert {name for name, label in labels.items() if label == "muon"} == muon
    assert all(labels[name] == "adamw" for name in labels
               if name.endswith(("embedding", "bias", "scale")) or name.startswith("lm_head"))


def _spread_gradients(params, seed=0):
    """Random gradients; each Muon leaf's, seen as its (fan_in, fan_out) matrix, with singular
    values spread over 100× (a real gradient is far from orthogonal)."""
    rng = np.random.default_rng(seed)
    labels = muon_labels(params)

    def one(p, label):
        if label == "adamw":
            return rng.standard_normal(p.shape).astype(np.float32)
        m, n = p.shape[0], math.prod(p.shape[1:])
        U, _ = np.linalg.qr(rng.standard_normal((m, m)))
        W, _ = np.linalg.qr(rng.standard_normal((n, n)))
        k = min(m, n)
        return ((U[:, :k] * np.logspace(-2, 0, k)) @ W[:k]).reshape(p.shape).astype(np.float32)

    return jax.tree.map(one, params, labels)


@pytest.mark.parametrize("ns_steps, decay", [(5, 0.0), (3, 0.0), (5, 0.5)])
def test_one_muon_step_orthogonalizes_the_hidden_matrices(muon_model_params, ns_steps, decay):
    """Update of a Muon leaf = −rate · (√max(1, fan_out/fan_in) · NewtonSchulz(gradient) +
    muon_weight_decay · param), the stacked (C, H, D) kernels as one (C, H·D) matrix: singular
    values near 1 (in [0.6, 1.2], where the gradient's spread over 100×, with the default five
    iterations), equal to the reference's train.muon_ns_steps iterations."""
    params = muon_model_params
    train = _muon_train(muon_ns_steps=ns_steps, muon_weight_decay=decay)
    grads, optimizer = _spread_gradients(params), make_optimizer(train)
    updates, _ = optimizer.update(grads, optimizer.init(params), params)
    updates, grads, flat_params = _flat(updates), _flat(grads), _flat(params)
    # √max(1, fan_out/fan_in) written out for this model (C = 32, SwiGLU's hidden width 85):
    # the widening fc and gate get √(85/32); the square attention matrices and the narrowing
    # projection 1.
    assert grads["block_0/ffwd/fc/kernel"].shape == (32, 85)
    wide = {"ffwd/fc/kernel", "ffwd/gate/kernel"}
    for name in MUON_LEAVES:
        g = np.asarray(grads[name], np.float64)
        decayed = decay * np.asarray(flat_params[name], np.float64)
        scale = math.sqrt(85 / 32) if name.split("/", 1)[1] in wide else 1.0
        step = (-np.asarray(updates[name], np.float64) / train.muon_learning_rate
                - decayed) / scale
        matrix = step.reshape(g.shape[0], -1)
        np.testing.assert_allclose(matrix, ref.newton_schulz(g.reshape(g.shape[0], -1), ns_steps),
                                   rtol=0, atol=1e-5, err_msg=name)
        singular = np.linalg.svd(matrix, compute_uv=False)
        if ns_steps == 5:  # three leave the smallest singular values of a 100× spread below
            assert 0.6 < singular.min() and singular.max() < 1.2, name
    # Not H thin (C, D) matrices, each orthogonalized apart: that would be another update.
    g = np.asarray(grads["block_0/sa/heads/query/kernel"], np.float64)
    q = -np.asarray(updates["block_0/sa/heads/query/kernel"]) / train.muon_learning_rate
    assert not np.allclose(q[:, 0], ref.newton_schulz(g[:, 0]), atol=1e-2)


def test_the_adamw_leaves_move_as_adamw_alone_would(muon_model_params):
    """Five steps: every leaf Muon does not take moves exactly as under optimizer=adamw (same
    rate, betas, masked decay, and clipping at the global norm of all the gradients)."""
    params = muon_model_params
    with_muon, adamw = make_optimizer(_muon_train()), make_optimizer(
        _muon_train(optimizer="adamw"))
    p_muon, p_adamw = params, params
    s_muon, s_adamw = with_muon.init(params), adamw.init(params)
    for t in range(5):
        scale = [0.05, 20.0, 1.0][t % 3]  # clipped at 20, not at 0.05
        grads = jax.tree.map(lambda g, s=scale: g * s, _spread_gradients(params, t))
        u, s_muon = with_muon.update(grads, s_muon, p_muon)
        p_muon = optax.apply_updates(p_muon, u)
        u, s_adamw = adamw.update(grads, s_adamw, p_adamw)
        p_adamw = optax.apply_updates(p_adamw, u)
    a, b, labels = _flat(p_muon), _flat(p_adamw), _flat(muon_labels(params))
    for name, label in labels.items():
        if label == "adamw":
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
        else:
            assert not np.allclose(a[name], b[name]), name


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_muons_rate_is_the_schedule_scaled_to_its_peak(schedule):
    train = _muon_train(lr_schedule=schedule, num_steps=50, warmup_steps=10,
                        min_learning_rate=1e-3)
    muon_rate = learning_rate_schedule(train, train.muon_learning_rate)
    for t in range(0, 60, 7):
        assert float(muon_rate(t)) == pytest.approx(
            ref.learning_rate(min(t, 50), train) * train.muon_learning_rate
            / train.learning_rate, rel=1e-6, abs=1e-12)


# --- resume -----------------------------------------------------------------------------------

MODERN_FLAGS = [f"--config.model.{k}={str(v).lower() if isinstance(v, bool) else v}"
                for k, v in MODERN.items()] + [
    "--config.model.dropout=0.1", "--config.train.optimizer=muon",
    "--config.train.lr_schedule=cosine", "--config.train.warmup_steps=5",
    "--config.train.num_steps=40", "--config.train.checkpoint_every=10",
    "--config.train.eval_interval=20"]


def test_a_killed_and_resumed_modern_run_equals_a_straight_one(tmp_path):
    """Every switch on, Muon, dropout: killed after step 25 and resumed, the state at step 40
    (params and both optimizers' moments) is the straight run's, bit for bit."""
    def train(workdir, kill_at=None):
        return run_python(["train.py", f"--config={REPO / 'tests/tiny_config.py'}",
                           f"--workdir={workdir}", *MODERN_FLAGS],
                          env={ENV: kill_at} if kill_at else {})

    straight = train(tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr
    assert train(tmp_path / "resumed", kill_at="step:25").returncode == -signal.SIGKILL
    resumed = train(tmp_path / "resumed")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from the checkpoint at step" in resumed.stdout
    a, b = load_run(tmp_path / "straight"), load_run(tmp_path / "resumed")
    assert a.config.model.pos_emb == "rope" and a.config.train.optimizer == "muon"
    assert a.step == b.step == 40
    leaves_a = jax.tree_util.tree_flatten_with_path(a.state)[0]
    leaves_b = jax.tree_util.tree_flatten_with_path(b.state)[0]
    assert len(leaves_a) == len(leaves_b)
    for (path, x), (_, y) in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(path))
