"""Scaled dot-product attention: one Head, then many in parallel.

Legend: B batch, T query time, S key/value time, C channels, H heads, D head size.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from gpt_jax.models.chunked_attention import chunked_causal_attention
from gpt_jax.models.dropout import Dropout
from gpt_jax.models.fused_heads import FusedHeads
from gpt_jax.models.init import dense_init, proj_init
from gpt_jax.models.kv_cache import KVCache
from gpt_jax.models.query_key import QueryKey
from gpt_jax.models.rope import rotate


class Head(QueryKey, nn.Module):
    """One head of attention: every position asks a query, every position offers a key and a
    value, and each output is the values averaged by how well their keys match its query.

    `causal` masks the future (a decoder); without it every position sees all the others (an
    encoder). Keys and values come from x itself (self-attention) or, given `kv_BxSxC`, from
    another sequence (cross-attention); `kv_mask_BxS` marks the real keys (False: padding).
    `config` needs the attention fields of a GPTConfig.

    `qk_norm` RMS-normalizes each query and key (learned gain, no bias) before the dot product,
    so a score cannot grow by the weights' growth alone; `pos_emb="rope"` then rotates them
    by their positions (models/rope.py; self-attention only), before keys enter the cache.
    """

    config: object
    causal: bool = True
    deterministic: bool = True
    decode: bool = False  # sampling: keys and values of earlier tokens come from a cache

    @nn.compact
    def __call__(self, x_BxTxC: jax.Array, kv_BxSxC: jax.Array | None = None,
                 kv_mask_BxS: jax.Array | None = None, start: jax.Array | int = 0) -> jax.Array:
        cfg = self.config
        source_BxSxC = x_BxTxC if kv_BxSxC is None else kv_BxSxC
        q_BxTxD = self.query(x_BxTxC)
        if self.decode and kv_BxSxC is not None:  # cross-attention while sampling
            k_BxSxD, v_BxSxD = self.source_keys_values(source_BxSxC)
        else:
            k_BxSxD = self.key(source_BxSxC)
            v_BxSxD = self.linear("value")(source_BxSxC)
        q_pos, k_pos = start + jnp.arange(q_BxTxD.shape[1]), jnp.arange(k_BxSxD.shape[1])
        if cfg.pos_emb == "rope" and kv_BxSxC is None:
            # In self-attention the new keys are the queries' tokens: they sit at q_pos too.
            q_BxTxD = rotate(q_BxTxD, q_pos, cfg.rope_base)
            k_BxSxD = rotate(k_BxSxD, q_pos, cfg.rope_base)
        if self.decode and kv_BxSxC is None:
            k_BxSxD, v_BxSxD, k_pos = KVCache(self.config.block_size, name="cache")(
                k_BxSxD, v_BxSxD, start)
        elif self.causal and self.config.query_chunk and kv_BxSxC is None:
            return chunked_causal_attention(self.attend, q_BxTxD, k_BxSxD, v_BxSxD,
                                            self.config.query_chunk)
        return self.attend(q_BxTxD, k_BxSxD, v_BxSxD, q_pos, k_pos, kv_mask_BxS)

    def attend(self, q_BxTxD, k_BxSxD, v_BxSxD, q_pos_T, k_pos_S, kv_mask_BxS=None):
        """softmax(q·kᵀ / √D), the future and the padding masked out, dropout, then · v."""
        # Dividing by √D keeps the scores at unit variance, so softmax stays diffuse at init
        # instead of collapsing onto the single largest key. With qk_norm, |q| = |k| = √D at
        # unit gains, so the scores start within ±√D and the learned gains sharpen them.
        wei_BxTxS = q_BxTxD @ k_BxSxD.swapaxes(1, 2) * q_BxTxD.shape[-1] ** -0.5
        # -inf, not a large negative number: exp(-inf) is exactly 0, so a masked key gets
        # exactly zero weight and exactly zero gradient.
        if self.causal:
            wei_BxTxS = jnp.where(k_pos_S[None, :] <= q_pos_T[:, None], wei_BxTxS, -jnp.inf)
        if kv_mask_BxS is not None:
            wei_BxTxS = jnp.where(kv_mask_BxS[:, None, :], wei_BxTxS, -jnp.inf)
        wei_BxTxS = jax.nn.softmax(wei_BxTxS.astype(jnp.float32), axis=-1)
        self.sow("intermediates", "attention_weights", wei_BxTxS)  # off unless asked for
        wei_BxTxS = Dropout(self.config.dropout, self.config.fused_dropout)(
            wei_BxTxS.astype(v_BxSxD.dtype), deterministic=self.deterministic)
        return wei_BxTxS @ v_BxSxD

    def source_keys_values(self, source_BxSxC: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The keys and values of a source being translated: projected once, at the first
        call of a generation, then read from the cache for every new token."""
        if self.has_variable("cache", "source_key"):
            return self.get_variable("cache", "source_key"), self.get_variable("cache",
                                                                               "source_value")
        k_BxSxD, v_BxSxD = self.key(source_BxSxC), self.linear("value")(source_BxSxC)
        self.put_variable("cache", "source_key", k_BxSxD)
        self.put_variable("cache", "source_value", v_BxSxD)
        return k_BxSxD, v_BxSxD

    def qk_norm(self, name: str, x_BxTxD: jax.Array) -> jax.Array:
        """x / RMS(x) · γ over the head's D channels (`qk_norm`), in the compute dtype."""
        if not self.config.qk_norm:
            return x_BxTxD
        return nn.RMSNorm(dtype=self.config.compute_dtype, name=name)(x_BxTxD)

    def linear(self, name: str) -> nn.Dense:
        cfg = self.config
        return nn.Dense(cfg.head_size, use_bias=False, name=name, dtype=cfg.compute_dtype,
                        kernel_init=dense_init(cfg.init))


class MultiHeadAttention(nn.Module):
    """n_head Heads side by side on the same input, their outputs concatenated, then projected
    back into the residual stream (`projections`, with dropout; `bias`, `zero_init_proj`).
    Decoding with `fused_decode` runs models/fused_heads.py over the same parameters."""

    config: object
    causal: bool = True
    deterministic: bool = True
    decode: bool = False

    @nn.compact
    def __call__(self, x_BxTxC: jax.Array, kv_BxSxC: jax.Array | None = None,
                 kv_mask_BxS: jax.Array | None = None, start: jax.Array | int = 0) -> jax.Array:
        cfg = self.config
        if self.decode and cfg.fused_decode:  # the same weights, every head in one product
            heads = FusedHeads(cfg, self.causal, name="heads")
        else:
            # nn.vmap runs one Head definition with n_head independent sets of weights. Their
            # kernels are stacked as (C, H, D), the layout a matmul reads without a transpose:
            # that halves the time of a one-token decode step.
            heads = nn.vmap(Head, variable_axes={"params": 1, "cache": 0, "intermediates": 1},
                            split_rngs={"params": True, "dropout": True},
                            in_axes=None, out_axes=2, axis_size=cfg.n_head)
            heads = heads(cfg, self.causal, self.deterministic, self.decode, name="heads")
        out_BxTxHxD = heads(x_BxTxC, kv_BxSxC, kv_mask_BxS, start)
        out_BxTxHD = out_BxTxHxD.reshape(*out_BxTxHxD.shape[:2], -1)  # concatenate the heads
        if not cfg.projections:
            return out_BxTxHD
        out_BxTxC = nn.Dense(cfg.n_embd, use_bias=cfg.bias, kernel_init=proj_init(cfg),
                             dtype=cfg.compute_dtype, name="proj")(out_BxTxHD)
        return Dropout(cfg.dropout, cfg.fused_dropout)(out_BxTxC,
                                                       deterministic=self.deterministic)
