"""Every idea of the lecture against an independent reference (tests/reference.py, NumPy in
float64, written from the notes): a bug in the model cannot hide behind a comparison of the
model with itself.

Tolerance: the model computes in float32, so each output carries float32 rounding, a few
parts in 1e7 relative per operation, over a few layers; a bound of 1e-5 relative plus 1e-5
absolute (for outputs near zero) holds with a wide margin, while every break these tests exist
for changes the outputs by 1e-2 or more.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref

from conftest import tiny_config
from gpt_jax.models import GPTConfig, Head, MultiHeadAttention, build_model

V = 65
TOL = dict(rtol=1e-5, atol=1e-5)  # float32 against float64, see the module docstring


def _init(model, T=8, seed=0):
    return model.init(jax.random.key(seed), jnp.zeros((1, T), jnp.int32))["params"]


def _randomize(params, seed=1, scale=0.3):
    """Weights far from their init, so that every term of a formula moves the output (a
    LayerNorm gain of exactly 1 or a bias of exactly 0 would hide its own omission)."""
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return jax.tree.unflatten(tree, [w + scale * jax.random.normal(k, w.shape)
                                     for w, k in zip(leaves, keys, strict=True)])


@pytest.mark.parametrize("causal", [True, False], ids=["decoder", "encoder"])
def test_one_head_is_softmax_of_scaled_scores_times_values(causal):
    """q = xWq, k = xWk, v = xWv; softmax(q·kᵀ/√D), the future masked in a decoder; ·v."""
    head = Head(GPTConfig(V, block_size=6, n_embd=8, n_head=2), causal=causal)  # head size 4
    x = np.asarray(jax.random.normal(jax.random.key(0), (2, 6, 8)))
    p = head.init(jax.random.key(1), x)["params"]
    W = [np.asarray(p[name]["kernel"], np.float64) for name in ("query", "key", "value")]
    np.testing.assert_allclose(head.apply({"params": p}, x), ref.head(x, *W, causal=causal),
                               **TOL)


def test_cross_attention_reads_keys_and_values_of_the_other_sequence():
    head = Head(GPTConfig(V, block_size=8, n_embd=8, n_head=2), causal=False)
    x = np.asarray(jax.random.normal(jax.random.key(0), (2, 3, 8)))
    memory = np.asarray(jax.random.normal(jax.random.key(1), (2, 5, 8)))
    p = head.init(jax.random.key(2), x, memory)["params"]
    W = [np.asarray(p[name]["kernel"], np.float64) for name in ("query", "key", "value")]
    np.testing.assert_allclose(head.apply({"params": p}, x, memory),
                               ref.head(x, *W, causal=False, kv_BxSxC=memory), **TOL)


@pytest.mark.parametrize("projections", [False, True])
def test_multi_head_attention_concatenates_the_heads_in_order_then_projects(projections):
    config = GPTConfig(V, block_size=6, n_embd=12, n_head=4, projections=projections)
    mha = MultiHeadAttention(config)
    x = np.asarray(jax.random.normal(jax.random.key(0), (2, 6, 12)))
    p = _randomize(mha.init(jax.random.key(1), x)["params"])
    p64 = ref._f64(p)
    expected = ref.multi_head(x, p64["heads"], config, p64["proj"] if projections else None)
    np.testing.assert_allclose(mha.apply({"params": p}, x), expected, **TOL)


def test_layer_norm_is_the_notes_formula():
    ln = nn.LayerNorm()
    x = np.asarray(3 + 2 * jax.random.normal(jax.random.key(0), (4, 5, 16)))
    p = _randomize(ln.init(jax.random.key(1), x)["params"])
    expected = ref.layer_norm(x, *(np.asarray(p[k], np.float64) for k in ("scale", "bias")),
                              eps=ln.epsilon)
    np.testing.assert_allclose(ln.apply({"params": p}, x), expected, **TOL)


# Each ladder step and each switch off alone: the model equals the lecture's formula.
FORMS = {
    "gpt": {},
    "head": dict(n_layer=1, n_head=1, ffwd=False, residual=False, projections=False,
                 layer_norm=False, init="torch"),
    "multihead": dict(n_layer=1, n_head=4, ffwd=False, residual=False, projections=False,
                      layer_norm=False, init="torch"),
    "ffwd_before_residuals": dict(n_layer=1, ffwd=True, ffn_mult=1, residual=False,
                                  projections=False, layer_norm=False, init="torch"),
    "no_layer_norm": dict(layer_norm=False),
    "no_residual": dict(residual=False),
    "no_projections": dict(projections=False, ffn_mult=1),
    "no_feed_forward": dict(ffwd=False),
    "no_positions": dict(pos_emb="none"),
    "gelu_tied_wide_ffn": dict(activation="gelu", tie_embeddings=True, ffn_mult=2),
    "tanh_three_layers": dict(activation="tanh", n_layer=3),
    "embeddings_only": dict(n_layer=0),
}


@pytest.mark.parametrize("switches", FORMS.values(), ids=FORMS.keys())
def test_the_gpt_equals_the_lectures_formula(switches):
    """Embeddings (+ positions), blocks of x + attn(LN(x)) then + ffwd(LN(·)), final LN, head."""
    config = tiny_config(**switches).model
    model = build_model(config, V)
    params = _randomize(_init(model))
    idx = np.asarray(jax.random.randint(jax.random.key(3), (2, 8), 0, V))
    np.testing.assert_allclose(model.apply({"params": params}, idx),
                               ref.gpt_logits(params, idx, config), **TOL)


def test_a_token_at_two_positions_gets_different_logits_only_with_positions():
    """Attention alone is blind to order: a sequence of one repeated token looks the same from
    every position, until a learned position vector is added to each."""
    idx = np.full((1, 8), 7)
    for pos_emb in ("learned", "none"):
        model = build_model(tiny_config(pos_emb=pos_emb).model, V)
        logits = np.asarray(model.apply({"params": _randomize(_init(model))}, idx))[0]
        differs = np.abs(logits - logits[0]).max(axis=-1)[1:]  # each position vs position 0
        if pos_emb == "learned":
            assert (differs > 1e-3).all()
        else:
            np.testing.assert_allclose(differs, 0, **TOL)


def test_dropout_keeps_the_expected_activation_and_evaluation_is_deterministic():
    """Survivors are scaled by 1/(1−p): averaged over masks, each activation is unchanged."""
    from gpt_jax.models.dropout import Dropout

    x = jnp.linspace(-2, 2, 64)
    drop = Dropout(0.3)
    keys = jax.random.split(jax.random.key(0), 4000)
    outs = jax.vmap(lambda k: drop.apply({}, x, deterministic=False, rngs={"dropout": k}))(keys)
    # Each element's mean over 4000 masks has standard error |x|·sqrt(p/(1−p)/4000) <= 0.022.
    np.testing.assert_allclose(outs.mean(0), x, atol=5 * 0.022)
    ratio = np.asarray(outs[0] / x)  # x has no zero: 64 points from -2 to 2
    assert np.all(np.isclose(ratio, 0) | np.isclose(ratio, 1 / 0.7)), ratio
    np.testing.assert_array_equal(drop.apply({}, x, deterministic=True), x)


def test_initial_loss_is_that_of_a_uniform_guess():
    """At init the logits are near zero, so the loss is −log(1/V) = log V (the lecture's 4.17)."""
    model = build_model(tiny_config(n_layer=4, n_embd=32).model, V)
    idx = jax.random.randint(jax.random.key(0), (16, 8), 0, V)
    targets = np.asarray(jax.random.randint(jax.random.key(1), (16, 8), 0, V))
    logits = np.asarray(model.apply({"params": _init(model)}, idx), np.float64)
    assert abs(ref.cross_entropy(logits, targets) - math.log(V)) < 0.05
