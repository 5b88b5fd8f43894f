"""Scaled dot-product self-attention: one Head, then many in parallel.

Legend: B batch, T query time, S key/value time, C channels, H heads, D head size.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from gpt_jax.models.dropout import Dropout
from gpt_jax.models.init import dense_init


class Head(nn.Module):
    """One head of self-attention: every position asks a query, every position offers a key
    and a value, and the output is the values averaged by softmax(q·k / sqrt(D)).

    `causal` masks the future (a decoder); without it every position sees all the others
    (an encoder). Pass `kv_BxSxC` to take keys and values from another sequence
    (cross-attention). With `decode`, keys and values are kept in a (B, block_size, D) cache
    and `start` is the position of x's first token, so one token can be added at a time.
    """

    head_size: int
    block_size: int
    causal: bool = True
    dropout: float = 0.0
    deterministic: bool = True
    decode: bool = False
    init_style: str = "gpt2"
    dtype: jnp.dtype = jnp.float32  # of the matmuls; softmax always runs in float32
    query_chunk: int = 0  # > 0: causal attention by chunks of queries (see _chunked)

    @nn.compact
    def __call__(self, x_BxTxC: jax.Array, kv_BxSxC: jax.Array | None = None,
                 start: jax.Array | int = 0) -> jax.Array:
        source_BxSxC = x_BxTxC if kv_BxSxC is None else kv_BxSxC
        dense = lambda name: nn.Dense(self.head_size, use_bias=False, name=name,
                                      kernel_init=dense_init(self.init_style), dtype=self.dtype)
        q_BxTxD = dense("query")(x_BxTxC)
        k_BxSxD = dense("key")(source_BxSxC)
        v_BxSxD = dense("value")(source_BxSxC)
        T, S = q_BxTxD.shape[1], k_BxSxD.shape[1]
        q_pos, k_pos = jnp.arange(T), jnp.arange(S)
        if self.decode:
            k_BxSxD, v_BxSxD = self._cached(k_BxSxD, v_BxSxD, start)
            q_pos, k_pos = start + q_pos, jnp.arange(self.block_size)

        if self.query_chunk and self.causal and kv_BxSxC is None and not self.decode:
            return self._chunked(q_BxTxD, k_BxSxD, v_BxSxD)
        return self._attend(q_BxTxD, k_BxSxD, v_BxSxD, q_pos, k_pos,
                            mask=self.causal or self.decode)

    def _attend(self, q_BxTxD, k_BxSxD, v_BxSxD, q_pos, k_pos, mask: bool) -> jax.Array:
        """softmax(q·kᵀ / sqrt(D)) · v, query i seeing key j only where k_pos[j] <= q_pos[i]
        when `mask`."""
        # Dividing by sqrt(D) keeps the affinities at unit variance, so softmax stays diffuse
        # at init instead of collapsing onto the single largest key.
        wei_BxTxS = jnp.einsum("btd,bsd->bts", q_BxTxD, k_BxSxD) * self.head_size**-0.5
        if mask:
            # -inf, not a large negative number: exp(-inf) is exactly 0, so the future gets
            # exactly zero weight and exactly zero gradient.
            wei_BxTxS = jnp.where(k_pos[None, :] <= q_pos[:, None], wei_BxTxS, -jnp.inf)
        wei_BxTxS = jax.nn.softmax(wei_BxTxS.astype(jnp.float32), axis=-1).astype(v_BxSxD.dtype)
        wei_BxTxS = Dropout(self.dropout)(wei_BxTxS, deterministic=self.deterministic)
        return jnp.einsum("bts,bsd->btd", wei_BxTxS, v_BxSxD)

    def _chunked(self, q_BxTxD, k_BxTxD, v_BxTxD) -> jax.Array:
        """Causal attention one chunk of queries at a time: the chunk ending at t attends to
        keys [0, t) only, so the masked upper triangle of the (T, T) weights is never
        computed (T/chunk = 4 computes 10 of 16 blocks), and each chunk's weights are small
        enough to stay in a CPU's cache. Equal to `_attend` up to float rounding."""
        T = q_BxTxD.shape[1]
        pos = jnp.arange(T)
        out = []
        for t0 in range(0, T, self.query_chunk):
            t1 = min(t0 + self.query_chunk, T)
            out.append(self._attend(q_BxTxD[:, t0:t1], k_BxTxD[:, :t1], v_BxTxD[:, :t1],
                                    pos[t0:t1], pos[:t1], mask=True))
        return jnp.concatenate(out, axis=1)

    def _cached(self, k_BxTxD: jax.Array, v_BxTxD: jax.Array, start):
        """Writes the new keys/values at `start` and returns the whole (B, block_size, D) cache."""
        B, _, D = k_BxTxD.shape
        out = []
        for name, new in (("cached_key", k_BxTxD), ("cached_value", v_BxTxD)):
            cache = self.variable("cache", name, jnp.zeros, (B, self.block_size, D), new.dtype)
            cache.value = jax.lax.dynamic_update_slice(cache.value, new, (0, start, 0))
            out.append(cache.value)
        return tuple(out)


class MultiHeadAttention(nn.Module):
    """n_head Heads side by side on the same input, concatenated, then projected back into the
    residual stream (`projections`, with dropout)."""

    n_head: int
    head_size: int
    block_size: int
    n_embd: int
    n_layer: int = 1
    causal: bool = True
    dropout: float = 0.0
    projections: bool = True
    deterministic: bool = True
    decode: bool = False
    init_style: str = "gpt2"
    dtype: jnp.dtype = jnp.float32
    query_chunk: int = 0

    @nn.compact
    def __call__(self, x_BxTxC: jax.Array, kv_BxSxC: jax.Array | None = None,
                 start: jax.Array | int = 0) -> jax.Array:
        # nn.vmap runs one Head definition with H independent sets of weights, in parallel.
        # Their kernels are stacked as (C, H, D), the layout a matmul reads without a
        # transpose: that halves the time of a one-token decode step.
        heads = nn.vmap(Head, variable_axes={"params": 1, "cache": 0},
                        split_rngs={"params": True, "dropout": True},
                        in_axes=None, out_axes=2, axis_size=self.n_head)
        heads = heads(self.head_size, self.block_size, self.causal, self.dropout,
                      self.deterministic, self.decode, self.init_style, self.dtype,
                      self.query_chunk, name="heads")
        out_BxTxHxD = heads(x_BxTxC, kv_BxSxC, start)
        out_BxTxHD = out_BxTxHxD.reshape(*out_BxTxHxD.shape[:2], -1)  # concatenate the heads
        if not self.projections:
            return out_BxTxHD
        out_BxTxC = nn.Dense(self.n_embd, kernel_init=dense_init(self.init_style, self.n_layer),
                             dtype=self.dtype, name="proj")(out_BxTxHD)
        return Dropout(self.dropout)(out_BxTxC, deterministic=self.deterministic)
