"""Writing a target for a source, one token at a time: the encoder–decoder's generation.

The encoder runs once per source, and each decoder head projects the source's keys and values
once (models/attention.py; all heads at once with `model.fused_decode`, models/fused_heads.py);
the decoder's self-attention keeps a cache of the target so far, so each new token costs one
position of the decoder. `use_cache=False` re-runs the decoder on the whole prefix at every
token instead (for tests and the benchmark).
Legend: B sources, S source time, T target positions (max_target_len + 1), V vocab.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from gpt_jax.generation import filter_logits
from gpt_jax.pairs import PairVocab
from gpt_jax.xla_options import compiler_options


def _target_logits(logits_BxV: jax.Array) -> jax.Array:
    """The logits with PAD and BOS at -inf: neither stands in a target, and a target written
    with one would print as another (PairVocab.decode skips them)."""
    return jnp.where(jnp.arange(logits_BxV.shape[-1]) > PairVocab.BOS, logits_BxV, -jnp.inf)


def _pick(logits_BxV, keys_B, i, temperature, top_k, top_p, greedy: bool):
    """Token i of each row's target, greedily or drawn from the row's own key; never PAD or
    BOS."""
    logits_BxV = _target_logits(logits_BxV)
    if greedy:
        return jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)
    filtered_BxV = filter_logits(logits_BxV, temperature, top_k, top_p)
    draw = lambda key, logits_V: jax.random.categorical(jax.random.fold_in(key, i), logits_V)
    return jax.vmap(draw)(keys_B, filtered_BxV).astype(jnp.int32)


_STATIC = ("model", "steps", "greedy", "use_cache")


@functools.cache
def _jitted(fn, library_products: bool):
    """`fn` jitted, its products by YNNPACK or by XLA's own kernels (xla_options.py)."""
    return jax.jit(fn, static_argnames=_STATIC,
                   compiler_options=compiler_options(library_products))


def _program(fn, library_products: bool, x: jax.Array):
    """`fn` as a program of its own; inside another program being traced (the evaluation's
    exact match), `fn` itself, part of that program and compiled with its options."""
    return fn if isinstance(x, jax.core.Tracer) else _jitted(fn, library_products)


# From this many sources up, the cached decoding's products run faster by XLA's own kernels
# than by YNNPACK; below, YNNPACK is a little faster (benchmarks/README.md, measured at 1 to
# 1,024 sources).
XLA_PRODUCTS_FROM = 32


def _products_for(use_cache: bool, rows: int, library_products: bool | None) -> bool:
    """None: the faster choice measured for each path (benchmarks/translation.py): XLA's own
    kernels for the cached decoder's one-token products from XLA_PRODUCTS_FROM sources up,
    YNNPACK below that and for the uncached decoder's whole prefixes."""
    if library_products is not None:
        return library_products
    return not use_cache or rows < XLA_PRODUCTS_FROM


def translate(model: nn.Module, params, source_BxS: jax.Array, keys_B: jax.Array | None = None,
              temperature=1.0, top_k=0, top_p=1.0, *, steps: int, greedy: bool = True,
              use_cache: bool = True, library_products: bool | None = None) -> jax.Array:
    """(B, steps) target tokens, never PAD or BOS: greedy, or sampled with temperature, top-k
    and top-p, each row from its own key of keys_B (a row draws the same beside any others).
    `library_products`: who computes the products on a CPU (xla_options.py); None chooses the
    faster way for the path and the batch."""
    return _program(_translate, _products_for(use_cache, len(source_BxS), library_products),
                    source_BxS)(
        model, params, source_BxS, keys_B, temperature, top_k, top_p, steps=steps,
        greedy=greedy, use_cache=use_cache)


def _translate(model, params, source_BxS, keys_B, temperature, top_k, top_p, *, steps, greedy,
               use_cache):
    source_mask_BxS = source_BxS != PairVocab.PAD
    memory_BxSxC = model.apply({"params": params}, source_BxS, method=model.encode)
    return _write_target(model, params, memory_BxSxC, source_mask_BxS, keys_B, temperature,
                         top_k, top_p, steps=steps, greedy=greedy, use_cache=use_cache)


def write_target(model: nn.Module, params, memory_BxSxC: jax.Array, source_mask_BxS: jax.Array,
                 keys_B: jax.Array | None = None, temperature=1.0, top_k=0, top_p=1.0, *,
                 steps: int, greedy: bool = True, use_cache: bool = True,
                 library_products: bool | None = None) -> jax.Array:
    """The decoder's part of `translate`, given the encoded sources."""
    return _program(_write_target, _products_for(use_cache, len(memory_BxSxC), library_products),
                    memory_BxSxC)(
        model, params, memory_BxSxC, source_mask_BxS, keys_B, temperature, top_k, top_p,
        steps=steps, greedy=greedy, use_cache=use_cache)


def _write_target(model, params, memory_BxSxC, source_mask_BxS, keys_B, temperature, top_k,
                  top_p, *, steps, greedy, use_cache):
    variables = {"params": params}
    B = memory_BxSxC.shape[0]
    keys_B = jax.random.split(jax.random.key(0), B) if keys_B is None else keys_B
    bos_B = jnp.full((B,), PairVocab.BOS, jnp.int32)
    out_BxT = jnp.zeros((B, steps), jnp.int32)

    if not use_cache:
        def uncached(i, out_BxT):
            prefix_BxT = jnp.concatenate([bos_B[:, None], out_BxT[:, :-1]], axis=1)
            logits_BxV = model.apply(variables, prefix_BxT, memory_BxSxC, source_mask_BxS,
                                     method=model.decode)[:, i]
            token_B = _pick(logits_BxV, keys_B, i, temperature, top_k, top_p, greedy)
            return out_BxT.at[:, i].set(token_B)

        return jax.lax.fori_loop(0, steps, uncached, out_BxT)

    def feed(token_B, position, cache):
        """The logits after `token_B` at `position`, and the cache that now holds it."""
        logits_Bx1xV, mutated = model.apply(
            {**variables, **({"cache": cache} if cache is not None else {})}, token_B[:, None],
            memory_BxSxC, source_mask_BxS, decode=True, start=position, method=model.decode,
            mutable=["cache"])
        return logits_Bx1xV[:, 0], mutated["cache"]

    logits_BxV, cache = feed(bos_B, 0, None)

    def cached(i, carry):
        out_BxT, logits_BxV, cache = carry
        token_B = _pick(logits_BxV, keys_B, i, temperature, top_k, top_p, greedy)
        logits_BxV, cache = feed(token_B, i + 1, cache)
        return out_BxT.at[:, i].set(token_B), logits_BxV, cache

    out_BxT, logits_BxV, _ = jax.lax.fori_loop(0, steps - 1, cached,
                                               (out_BxT, logits_BxV, cache))
    last_B = _pick(logits_BxV, keys_B, steps - 1, temperature, top_k, top_p, greedy)
    return out_BxT.at[:, steps - 1].set(last_B)


@functools.partial(jax.jit, static_argnames=("model", "steps"))
def complete_greedily(model: nn.Module, params, x_BxL: jax.Array, length_B: jax.Array, *,
                      steps: int) -> jax.Array:
    """The decoder-only GPT's answer to prompts "source<BOS>" of different lengths, greedily:
    (B, steps) tokens after each prompt, never PAD or BOS. Prompts of different lengths share
    no cache position, so each token re-runs the whole window (a comparison baseline, not the
    fast path)."""
    B, L = x_BxL.shape
    rows = jnp.arange(B)

    def one(i, carry):
        x_BxL, out_BxT = carry
        position_B = jnp.minimum(length_B - 1 + i, L - 1)
        logits_BxV = _target_logits(model.apply({"params": params}, x_BxL)[rows, position_B])
        token_B = jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)
        x_BxL = x_BxL.at[rows, jnp.minimum(position_B + 1, L - 1)].set(token_B)
        return x_BxL, out_BxT.at[:, i].set(token_B)

    _, out_BxT = jax.lax.fori_loop(0, steps, one, (x_BxL, jnp.zeros((B, steps), jnp.int32)))
    return out_BxT
