"""Jitted autoregressive generation with a fixed-size key-value cache.

One prefill of the prompt fills the cache, then a `lax.fori_loop` adds one token per
iteration, attending to the cached keys and values instead of re-running the context.
When the context fills the block, the oldest `slide` tokens are dropped and the rest are
prefilled again (learned positions shift, so the cached keys cannot simply be reused).
Legend: B samples, T block_size, V vocab, N new tokens.
"""

from __future__ import annotations

import functools
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def filter_logits(logits_BxV: jax.Array, temperature, top_k, top_p) -> jax.Array:
    """Scales by 1/temperature, then keeps the top_k most likely tokens (0 keeps all) and,
    of those, the smallest set whose probability mass reaches top_p; the rest get -inf.
    Each row is shifted by its max first (softmax is the same): divided by a tiny temperature,
    the max stays 0 and the rest go far below it, where unshifted logits would overflow to
    +inf together and the draw would take the lowest id among them, not the likeliest."""
    logits_BxV = logits_BxV.astype(jnp.float32)
    logits_BxV = (logits_BxV - logits_BxV.max(axis=-1, keepdims=True)) / temperature
    sorted_BxV = jnp.sort(logits_BxV, axis=-1)[:, ::-1]
    V = logits_BxV.shape[-1]
    kth_Bx1 = jnp.take(sorted_BxV, jnp.where(top_k > 0, jnp.minimum(top_k, V), V) - 1, axis=-1)
    in_top_k_BxV = sorted_BxV >= kth_Bx1[:, None]
    probs_BxV = jax.nn.softmax(jnp.where(in_top_k_BxV, sorted_BxV, -jnp.inf), axis=-1)
    # Keep a token if the mass of the more likely ones is still below p: that is the smallest
    # prefix reaching p, and it always holds the most likely token. p = 1 keeps every token,
    # even those the float32 sum before them has already rounded to 1.
    in_nucleus_BxV = (jnp.cumsum(probs_BxV, axis=-1) - probs_BxV < top_p) | (top_p >= 1.0)
    keep_BxV = in_top_k_BxV & in_nucleus_BxV
    cutoff_Bx1 = jnp.min(jnp.where(keep_BxV, sorted_BxV, jnp.inf), axis=-1, keepdims=True)
    return jnp.where(logits_BxV >= cutoff_Bx1, logits_BxV, -jnp.inf)


def prefill(model: nn.Module, params, window_BxT: jax.Array, length):
    """Runs the (B, block_size) window, of which the first `length` tokens are real, and
    returns the logits after the last real token and a fresh cache. Positions past `length`
    hold padding; the causal mask keeps it out of every real position, and the decode steps
    overwrite it before anything attends to it."""
    logits_BxTxV, variables = model.apply({"params": params}, window_BxT, decode=True, start=0,
                                          mutable=["cache"])
    return logits_BxTxV[:, length - 1], variables.get("cache", {})


def decode_step(model: nn.Module, params, cache, token_B: jax.Array, position):
    """Adds one token at `position`: its logits and the cache with its key and value."""
    logits_Bx1xV, variables = model.apply({"params": params, "cache": cache}, token_B[:, None],
                                          decode=True, start=position, mutable=["cache"])
    return logits_Bx1xV[:, 0], variables.get("cache", {})


def full_forward(model: nn.Module, params, window_BxT: jax.Array, length):
    """The uncached path: the whole window again, for the logits after its last real token."""
    return model.apply({"params": params}, window_BxT)[:, length - 1]


def _window(tokens_BxL: jax.Array, end, size: int, block_size: int) -> jax.Array:
    """The `size` tokens before `end`, left-aligned in a (B, block_size) window."""
    B = tokens_BxL.shape[0]
    recent = jax.lax.dynamic_slice(tokens_BxL, (0, end - size), (B, size))
    return jnp.zeros((B, block_size), tokens_BxL.dtype).at[:, :size].set(recent)


@functools.partial(jax.jit, static_argnames=("model", "block_size", "max_new_tokens",
                                             "use_cache", "slide"))
def generate(model: nn.Module, params, prompt_BxT: jax.Array, prompt_len, key: jax.Array,
             temperature=1.0, top_k=0, top_p=1.0, *, block_size: int, max_new_tokens: int,
             use_cache: bool = True, slide: int = 0) -> jax.Array:
    """(B, N) new tokens after a prompt left-aligned in prompt_BxT, its first prompt_len real.

    `slide` (default block_size // 2) tokens are dropped when the context is full; slide=1
    keeps the context at exactly the last block_size tokens, as the uncached path does.
    """
    slide = slide or max(block_size // 2, 1)
    keep = block_size - slide + 1  # context length right after a slide, new token included
    B = prompt_BxT.shape[0]
    tokens_BxL = jnp.zeros((B, block_size + max_new_tokens), jnp.int32)
    tokens_BxL = tokens_BxL.at[:, :block_size].set(prompt_BxT)

    def sample(i, tokens_BxL, logits_BxV):
        """Draws new token i and appends it; returns the tokens and their count so far."""
        filtered_BxV = filter_logits(logits_BxV, temperature, top_k, top_p)
        token_B = jax.random.categorical(jax.random.fold_in(key, i), filtered_BxV)
        end = prompt_len + i + 1
        return jax.lax.dynamic_update_slice(tokens_BxL, token_B[:, None], (0, end - 1)), end

    if not use_cache:
        def uncached(i, carry):
            tokens_BxL, logits_BxV = carry
            tokens_BxL, end = sample(i, tokens_BxL, logits_BxV)
            n = jnp.minimum(end, block_size)
            window = jax.lax.dynamic_slice(tokens_BxL, (0, end - n), (B, block_size))
            window = jnp.where(jnp.arange(block_size) < n, window, 0)
            return tokens_BxL, full_forward(model, params, window, n)

        carry = (tokens_BxL, full_forward(model, params, prompt_BxT, prompt_len))
        tokens_BxL, _ = jax.lax.fori_loop(0, max_new_tokens, uncached, carry)
        return jax.lax.dynamic_slice(tokens_BxL, (0, prompt_len), (B, max_new_tokens))

    # Segments: decode one token at a time until the cache is full, then slide and prefill
    # once. The decode loop holds no branch, so the cache is updated in place.
    def decode(_, carry):
        i, tokens_BxL, logits_BxV, cache, context_len = carry
        tokens_BxL, end = sample(i, tokens_BxL, logits_BxV)
        logits_BxV, cache = decode_step(model, params, cache, tokens_BxL[:, end - 1],
                                        context_len)
        return i + 1, tokens_BxL, logits_BxV, cache, context_len + 1

    def slide_and_prefill(carry):
        i, tokens_BxL, logits_BxV, cache, _ = carry
        tokens_BxL, end = sample(i, tokens_BxL, logits_BxV)
        window = _window(tokens_BxL, end, keep, block_size)
        return (i + 1, tokens_BxL, *prefill(model, params, window, keep),
                jnp.asarray(keep, jnp.int32))

    def segment(carry):
        i, _, _, _, context_len = carry
        steps = jnp.minimum(max_new_tokens - i, block_size - context_len)
        carry = jax.lax.fori_loop(0, steps, decode, carry)
        return jax.lax.cond(carry[0] < max_new_tokens, slide_and_prefill, lambda c: c, carry)

    carry = (jnp.asarray(0, jnp.int32), tokens_BxL,
             *prefill(model, params, prompt_BxT, prompt_len), jnp.asarray(prompt_len, jnp.int32))
    carry = jax.lax.while_loop(lambda c: c[0] < max_new_tokens, segment, carry)
    return jax.lax.dynamic_slice(carry[1], (0, prompt_len), (B, max_new_tokens))


def prompt_window(ids: np.ndarray, block_size: int, num_samples: int) -> tuple[np.ndarray, int]:
    """The last block_size prompt ids, left-aligned in a (num_samples, block_size) window."""
    ids = np.asarray(ids, np.int32)[-block_size:]
    window_BxT = np.zeros((num_samples, block_size), np.int32)
    window_BxT[:, : len(ids)] = ids
    return window_BxT, len(ids)


def newline_ids(tokenizer) -> list[int] | None:
    """The default prompt: a newline, the start of a line of text; None where the vocabulary
    has no newline (the sampler then asks for a prompt; a training run's own samples start
    from id 0)."""
    try:
        return list(tokenizer.encode("\n")) or None
    except Exception:  # a character vocabulary without a newline
        return None


def sample_texts(model: nn.Module, params, tokenizer, block_size: int,
                 prompt: str = "", max_new_tokens: int = 500, num_samples: int = 1,
                 seed: int = 0, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                 slide: int = 0, use_cache: bool = True) -> list[str]:
    """`num_samples` continuations of `prompt` (a newline if empty), generated as one batch."""
    ids = tokenizer.encode(prompt) if prompt else (newline_ids(tokenizer) or [0])
    window_BxT, n = prompt_window(ids, block_size, num_samples)
    new_BxN = generate(model, params, window_BxT, n, jax.random.key(seed), temperature, top_k,
                       top_p, block_size=block_size, max_new_tokens=max_new_tokens,
                       use_cache=use_cache, slide=slide)
    wait_interruptibly(new_BxN)
    return [tokenizer.decode(row) for row in np.asarray(new_BxN)]


def wait_interruptibly(x: jax.Array, poll_s: float = 0.05) -> None:
    """Waits for an asynchronously dispatched result in short sleeps: a blocking fetch would
    hold Ctrl-C until a long generation ends, a sleep lets it through at once."""
    while not x.is_ready():
        time.sleep(poll_s)
