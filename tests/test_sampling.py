import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_config
from gpt_jax.generation import decode_step, filter_logits, generate, prefill
from gpt_jax.models import build_model

V, T = 65, 8


@pytest.fixture(scope="module")
def gpt():
    model = build_model(tiny_config(n_layer=2, n_embd=32, n_head=4).model, V)
    params = model.init(jax.random.key(0), jnp.zeros((1, T), jnp.int32))["params"]
    return model, params


def test_cached_decode_matches_full_forward_at_every_step(gpt):
    """Equal to float32 rounding (one position's products sum in another order than the whole
    prefix's: measured ~1e-7), far below what a cache fault moves: a changed past token moves
    these initial weights' last logits by ~0.01, a thousand times the tolerance."""
    model, params = gpt
    run_prefill = jax.jit(lambda w, n: prefill(model, params, w, n))
    run_decode = jax.jit(lambda c, tok, pos: decode_step(model, params, c, tok, pos))
    forward = jax.jit(lambda x: model.apply({"params": params}, x))
    rng = np.random.default_rng(0)
    for prompt_len in (1, 3, T - 1):
        seq = rng.integers(0, V, size=(2, T)).astype(np.int32)  # the prompt, then what follows
        window = np.where(np.arange(T) < prompt_len, seq, 0).astype(np.int32)
        logits, cache = run_prefill(window, prompt_len)
        for pos in range(prompt_len, T):
            full = forward(seq[:, :pos])[:, -1]  # uncached: the whole prefix again
            np.testing.assert_allclose(logits, full, rtol=1e-5, atol=1e-6)
            logits, cache = run_decode(cache, seq[:, pos], pos)
        np.testing.assert_allclose(logits, forward(seq)[:, -1], rtol=1e-5, atol=1e-6)


def _prompt(ids):
    window = np.zeros((1, T), np.int32)
    window[0, : len(ids)] = ids[-T:]
    return window, min(len(ids), T)


@pytest.mark.parametrize("prompt", [[5], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]],
                         ids=["short", "longer_than_block"])
def test_greedy_cached_and_uncached_generate_the_same_text(gpt, prompt):
    """With slide=1 both keep exactly the last block_size tokens, so greedy outputs agree."""
    model, params = gpt
    window, n = _prompt(prompt)
    kwargs = dict(temperature=1.0, top_k=1, top_p=1.0, block_size=T, max_new_tokens=3 * T)
    cached = generate(model, params, window, n, jax.random.key(0), use_cache=True, slide=1,
                      **kwargs)
    uncached = generate(model, params, window, n, jax.random.key(0), use_cache=False, **kwargs)
    np.testing.assert_array_equal(cached, uncached)


@pytest.mark.parametrize("slide", [0, 3], ids=["default_half_block", "three"])
def test_a_slide_drops_that_many_tokens_when_the_block_is_full(gpt, slide):
    """Greedily, five blocks long: each token is read from the context a by-hand loop keeps,
    which grows to block_size, then restarts from its last block_size - slide + 1 tokens."""
    model, params = gpt
    window, n = _prompt([3, 9])
    out = generate(model, params, window, n, jax.random.key(1), top_k=1, block_size=T,
                   max_new_tokens=5 * T, slide=slide)
    keep = T - (slide or T // 2) + 1
    forward = jax.jit(lambda x: model.apply({"params": params}, x))
    tokens, context = [3, 9], 2
    for _ in range(5 * T):
        window_1xT = np.zeros((1, T), np.int32)  # causal: what follows the context is not read
        window_1xT[0, :context] = tokens[-context:]
        tokens.append(int(np.argmax(forward(window_1xT)[0, context - 1])))
        context = context + 1 if context < T else keep
    np.testing.assert_array_equal(out[0], tokens[2:])


def test_same_seed_same_samples_and_batched_samples_differ(gpt):
    model, params = gpt
    window, n = _prompt([3, 4])
    windows = np.repeat(window, 4, axis=0)
    kwargs = dict(block_size=T, max_new_tokens=20)
    a = generate(model, params, windows, n, jax.random.key(7), **kwargs)
    b = generate(model, params, windows, n, jax.random.key(7), **kwargs)
    np.testing.assert_array_equal(a, b)
    assert len({tuple(row) for row in np.asarray(a)}) > 1


def test_top_k_1_is_greedy():
    logits = jax.random.normal(jax.random.key(0), (3, V))
    filtered = filter_logits(logits, 1.0, 1, 1.0)
    kept = np.isfinite(np.asarray(filtered))
    assert kept.sum(axis=1).tolist() == [1, 1, 1]
    np.testing.assert_array_equal(kept.argmax(axis=1), np.argmax(logits, axis=1))


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = np.array([[0.5, 0.3, 0.15, 0.05]])
    logits = jnp.log(jnp.asarray(probs))
    keep = lambda p: np.isfinite(np.asarray(filter_logits(logits, 1.0, 0, p)))[0].tolist()
    assert keep(0.5) == [True, False, False, False]
    assert keep(0.6) == [True, True, False, False]
    assert keep(0.8) == [True, True, False, False]
    assert keep(0.81) == [True, True, True, False]
    assert keep(1.0) == [True, True, True, True]


def test_temperature_sharpens():
    logits = jnp.array([[1.0, 2.0, 3.0]])
    cold = jax.nn.softmax(filter_logits(logits, 0.5, 0, 1.0))
    hot = jax.nn.softmax(filter_logits(logits, 2.0, 0, 1.0))
    assert cold[0, 2] > jax.nn.softmax(logits)[0, 2] > hot[0, 2]


def test_temperature_divides_the_logits_once():
    logits = jax.random.normal(jax.random.key(0), (2, V)) * 3
    shifted = logits - logits.max(axis=-1, keepdims=True)  # softmax's own: the same draws
    for temperature in (0.5, 1.0, 2.0):
        # Division in float32 on both sides: equal to the last bit.
        np.testing.assert_array_equal(filter_logits(logits, temperature, 0, 1.0),
                                      shifted / temperature)


def test_a_tiny_temperature_always_draws_the_likeliest_token():
    """At 2e-38 (above float32's smallest normal, so the sampler takes it) every logit above
    ~4 overflowed to +inf, and the draw took the lowest id among them: id 0, never 1."""
    logits = jnp.array([[8.0, 10.0, 9.0, -2.0]])
    filtered = filter_logits(logits, 2e-38, 0, 1.0)
    keys = jax.random.split(jax.random.key(0), 256)
    draws = jax.vmap(lambda key: jax.random.categorical(key, filtered[0]))(keys)
    assert set(np.asarray(draws).tolist()) == {1}


def _first_token_frequencies(model, params, window, n, samples, **knobs):
    """How often each token is drawn first, over `samples` independent samples."""
    out = generate(model, params, np.repeat(window, samples, axis=0), n, jax.random.key(11),
                   block_size=T, max_new_tokens=1, **knobs)
    return np.bincount(np.asarray(out)[:, 0], minlength=V) / samples


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_generate_draws_from_softmax_of_the_logits_over_temperature(gpt, temperature):
    """The sampler's distribution is softmax(logits / T): 16,384 draws land within a total
    variation of 0.04 of it (the sampling noise is about 0.02 for these 65 tokens), and
    far from softmax(logits / T²), which a temperature applied twice would give."""
    model, params = gpt
    params = jax.tree.map(lambda p: p * 4, params)  # sharper logits than at init
    window, n = _prompt([5, 9, 2])
    logits = np.asarray(model.apply({"params": params}, window)[0, n - 1], np.float64)
    freq = _first_token_frequencies(model, params, window, n, 16384, temperature=temperature)

    def tv(t):
        p = np.exp(logits / t - (logits / t).max())
        return 0.5 * np.abs(freq - p / p.sum()).sum()

    assert tv(temperature) < 0.04 and tv(temperature**2) > 2 * tv(temperature) + 0.04


def test_generate_draws_only_from_the_top_k_and_the_top_p_nucleus(gpt):
    model, params = gpt
    params = jax.tree.map(lambda p: p * 4, params)
    window, n = _prompt([5, 9, 2])
    logits = np.asarray(model.apply({"params": params}, window)[0, n - 1], np.float64)
    order = np.argsort(-logits)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    top_k = _first_token_frequencies(model, params, window, n, 4096, top_k=3)
    assert set(np.flatnonzero(top_k)) == set(order[:3])
    nucleus = order[: np.searchsorted(np.cumsum(probs[order]), 0.6) + 1]  # smallest set >= 0.6
    top_p = _first_token_frequencies(model, params, window, n, 4096, top_p=0.6)
    assert set(np.flatnonzero(top_p)) == set(nucleus) and len(nucleus) >= 2
