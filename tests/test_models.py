import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import assert_causal, tiny_config
from gpt_jax.models import GPT, BigramLanguageModel, GPTConfig, Head, build_model
from gpt_jax.steps import cross_entropy

V = 65

LADDER_SWITCHES = {
    "gpt": {},
    "no_pos_emb": dict(pos_emb="none"),
    "single_head": dict(n_head=1, ffwd=False, residual=False, projections=False,
                        layer_norm=False, init="torch"),
    "no_residual_ffwd_mult1": dict(residual=False, projections=False, ffn_mult=1),
    "no_layer_norm": dict(layer_norm=False),
    "tied_gelu": dict(tie_embeddings=True, activation="gelu"),
    "embedding_only": dict(n_layer=0),
    "query_chunks": dict(query_chunk=3),  # chunks of 3, 3 and 2 queries
}


def init(model, T=8, seed=0):
    return model.init(jax.random.key(seed), jnp.zeros((1, T), jnp.int32))


@pytest.mark.parametrize("switches", LADDER_SWITCHES.values(), ids=LADDER_SWITCHES.keys())
def test_loss_at_t_has_zero_gradient_wrt_later_inputs(switches):
    """The model cannot see the future: d loss_t / d embedding_s is exactly 0 for s > t."""
    model = build_model(tiny_config(**switches).model, V)
    T = 8
    variables = init(model, T)
    idx = jax.random.randint(jax.random.key(1), (2, T), 0, V)
    targets = jax.random.randint(jax.random.key(2), (2, T), 0, V)

    def loss_by_position(perturbations):  # the loss at each position t, averaged over the batch
        logits = model.apply({"params": variables["params"], "perturbations": perturbations}, idx)
        return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean(0)

    zeros = jax.tree.map(jnp.zeros_like, variables["perturbations"])
    assert_causal(jax.jacrev(loss_by_position)(zeros)["embeddings"],  # (T, B, T, C)
                  sees_the_past=switches.get("n_layer") != 0)


@pytest.mark.parametrize("causal", [True, False])
def test_only_a_non_causal_head_sees_the_future(causal):
    head = Head(GPTConfig(V, block_size=6, n_embd=8, n_head=2), causal=causal)
    x = jax.random.normal(jax.random.key(0), (1, 6, 8))
    params = head.init(jax.random.key(1), x)
    jac = jax.jacobian(lambda x: head.apply(params, x)[0, 2].sum())(x)  # d out_2 / d x
    future = np.abs(np.asarray(jac[0, 3:])).sum()
    assert (future == 0.0) if causal else (future > 0.0)


def test_cross_attention_reads_keys_and_values_from_the_other_sequence():
    head = Head(GPTConfig(V, block_size=8, n_embd=8, n_head=2), causal=False)
    x = jax.random.normal(jax.random.key(0), (2, 3, 8))
    memory = jax.random.normal(jax.random.key(1), (2, 5, 8))
    params = head.init(jax.random.key(2), x, memory)
    out = head.apply(params, x, memory)
    assert out.shape == (2, 3, 4)
    jac = jax.jacobian(lambda m: head.apply(params, x, m).sum())(memory)
    assert np.all(np.abs(np.asarray(jac)).sum(axis=(0, 1, 2)) > 0)  # every memory slot is read


@pytest.mark.parametrize("name", ["bigram", "gpt"])
def test_initial_loss_is_log_vocab(name):
    model = build_model(tiny_config(name=name, n_layer=4, n_embd=32).model, V)
    idx = jax.random.randint(jax.random.key(0), (16, 8), 0, V)
    targets = jax.random.randint(jax.random.key(1), (16, 8), 0, V)
    loss = cross_entropy(model.apply(init(model), idx), targets)
    assert abs(float(loss) - math.log(V)) < 0.05


def test_bigram_reads_logits_from_the_table_row():
    model = BigramLanguageModel(V)
    params = init(model)
    idx = jnp.array([[3, 7, 3]])
    logits = model.apply(params, idx)
    table = params["params"]["token_embedding_table"]["embedding"]
    assert table.shape == (V, V)
    np.testing.assert_array_equal(logits[0], table[idx[0]])


def test_gpt2_init_scales_residual_projections():
    n_layer = 8
    model = GPT(GPTConfig(vocab_size=V, block_size=8, n_embd=256, n_head=4, n_layer=n_layer))
    params = init(model)["params"]
    proj = np.asarray(params["block_0"]["ffwd"]["proj"]["kernel"])
    fc = np.asarray(params["block_0"]["ffwd"]["fc"]["kernel"])
    assert abs(fc.std() - 0.02) < 0.002
    assert abs(proj.std() - 0.02 / math.sqrt(2 * n_layer)) < 0.001


def test_a_tied_head_has_no_lm_head_of_its_own():
    """(Its logits are x·wteᵀ: test_lecture's formula, gelu_tied_wide_ffn.)"""
    params = init(build_model(tiny_config(tie_embeddings=True).model, V))["params"]
    assert "lm_head" not in params
    untied = init(build_model(tiny_config().model, V))["params"]
    assert untied["lm_head"]["kernel"].shape == (16, V)


def test_dropout_only_in_training():
    model = build_model(tiny_config(dropout=0.5).model, V)
    params = init(model)
    idx = jax.random.randint(jax.random.key(0), (2, 8), 0, V)
    eval_a = model.apply(params, idx)
    eval_b = model.apply(params, idx, train=False)
    np.testing.assert_array_equal(eval_a, eval_b)
    train = model.apply(params, idx, train=True, rngs={"dropout": jax.random.key(1)})
    assert not np.allclose(train, eval_a)


def test_heads_have_independent_weights_stacked_as_c_h_d():
    """(Their concatenation is checked against the formula in test_lecture.py.)"""
    model = build_model(tiny_config(n_head=4, n_embd=16).model, V)
    heads = init(model)["params"]["block_0"]["sa"]["heads"]
    assert heads["query"]["kernel"].shape == (16, 4, 4)  # (C, H, head_size)
    assert not np.allclose(heads["query"]["kernel"][:, 0], heads["query"]["kernel"][:, 1])


@pytest.mark.parametrize("query_chunk", [3, 4])
def test_chunked_attention_equals_full_attention(query_chunk):
    """Skipping the masked blocks changes nothing but float rounding: logits and gradients."""
    full = build_model(tiny_config().model, V)
    chunked = build_model(tiny_config(query_chunk=query_chunk).model, V)
    params = init(full)["params"]
    idx = jax.random.randint(jax.random.key(1), (3, 8), 0, V)
    targets = jax.random.randint(jax.random.key(2), (3, 8), 0, V)
    np.testing.assert_allclose(jax.jit(chunked.apply)({"params": params}, idx),
                               jax.jit(full.apply)({"params": params}, idx), rtol=0, atol=1e-5)

    def grads(model):  # jitted: one compile instead of every op's own
        return jax.jit(jax.grad(lambda p: cross_entropy(model.apply({"params": p}, idx),
                                                        targets)))(params)

    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                 grads(chunked), grads(full))


def _logit_spread(params, model, x_BxT):
    return model.apply(params, x_BxT).astype(jnp.float32).std()


def test_every_activation_a_config_may_name_is_built():
    """The config lists its choices apart from the code (so that checking one never imports
    jax); the two lists must agree, and each activation must build a model whose logits are
    finite and whose loss has a finite, non-zero gradient."""
    from gpt_jax import config
    from gpt_jax.models.feedforward import ACTIVATION_FUNCTIONS

    assert tuple(ACTIVATION_FUNCTIONS) == config.ACTIVATIONS
    for activation in config.ACTIVATIONS:
        model = build_model(tiny_config(activation=activation).model, vocab_size=5)
        x_BxT = jnp.zeros((1, 8), jnp.int32)
        params = jax.jit(model.init)(jax.random.key(0), x_BxT)  # op by op: seconds each
        logits = jax.jit(model.apply)(params, x_BxT)
        assert logits.shape == (1, 8, 5) and bool(jnp.isfinite(logits).all())
        grads = jax.jit(jax.grad(functools.partial(_logit_spread, model=model, x_BxT=x_BxT)))(
            params)
        norm = float(optax.tree.norm(grads))
        assert math.isfinite(norm) and norm > 0, activation
