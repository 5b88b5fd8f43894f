"""Every head at once, for sampling's steps: the fast path of MultiHeadAttention's decoding
(`model.fused_decode`), with the same parameters and the same math as the Heads.

A decoding step does one token's arithmetic per row, so the layout of its operands costs as
much as the arithmetic. The vmapped Heads (attention.py) keep each head's cache head-major,
(H, B, S, D), and XLA copies the keys out of it into (H, B, D, S) for every step's q·kᵀ. Here
the caches hold keys and values transposed, (B, H, D, S), the layout in which XLA's CPU
backend reads both attention products in place: the source's (cross-attention) are projected
and transposed once per generation, the target's grow by one column a step. The projections
read the Heads' stacked kernels, (C, H, D). On the encoder–decoder's decoding this is faster;
on the GPT's batch-1 sampling it is slower (benchmarks/README.md), so it is off by default
and on in configs/seq2seq.py.

Legend: B batch, T new tokens, S key/value time, C channels, H heads, D head size.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from gpt_jax.models.init import dense_init
from gpt_jax.models.query_key import QueryKey
from gpt_jax.models.rope import rotate


class HeadsNorm(nn.Module):
    """qk_norm for all heads at once: the vmapped Heads' RMSNorm, whose gains are stacked as
    (D, H), applied to (B, T, H, D)."""

    dtype: str

    @nn.compact
    def __call__(self, x_BxTxHxD: jax.Array) -> jax.Array:
        H, D = x_BxTxHxD.shape[-2:]
        scale_DxH = self.param("scale", nn.initializers.ones, (D, H))
        x32_BxTxHxD = x_BxTxHxD.astype(jnp.float32)
        mean_square_BxTxHx1 = jnp.mean(jnp.square(x32_BxTxHxD), axis=-1, keepdims=True)
        # Grouped as nn.RMSNorm groups it, so that both give the same bits.
        gain_BxTxHxD = jax.lax.rsqrt(mean_square_BxTxHx1 + nn.RMSNorm.epsilon) * scale_DxH.T
        return (x32_BxTxHxD * gain_BxTxHxD).astype(self.dtype)


class FusedHeads(QueryKey, nn.Module):
    """The n_head Heads of MultiHeadAttention in decoding, as one module named like them.

    For inference only: no attention dropout, no sown attention weights. Initialize a model
    with decode=False: the same shapes come out here, but other draws than the Heads'."""

    config: object
    causal: bool = True

    @nn.compact
    def __call__(self, x_BxTxC: jax.Array, kv_BxSxC: jax.Array | None = None,
                 kv_mask_BxS: jax.Array | None = None, start: jax.Array | int = 0) -> jax.Array:
        cfg = self.config
        T = x_BxTxC.shape[1]
        q_BxTxHxD = self.query(x_BxTxC)
        q_pos_T = start + jnp.arange(T)
        if kv_BxSxC is not None:  # cross-attention: the source, projected at the first step
            k_BxHxDxS, v_BxHxDxS = self.source_keys_values(kv_BxSxC)
            k_pos_S = jnp.arange(k_BxHxDxS.shape[-1])
        else:  # self-attention: this step's keys and values join the cache
            k_BxTxHxD, v_BxTxHxD = self.key(x_BxTxC), self.linear("value")(x_BxTxC)
            if cfg.pos_emb == "rope":
                q_BxTxHxD = self.rotate(q_BxTxHxD, q_pos_T)
                k_BxTxHxD = self.rotate(k_BxTxHxD, q_pos_T)
            k_BxHxDxS = self.cached("cached_key", k_BxTxHxD, start)
            v_BxHxDxS = self.cached("cached_value", v_BxTxHxD, start)
            k_pos_S = jnp.arange(cfg.block_size)
        D = q_BxTxHxD.shape[-1]
        wei_BxHxTxS = jnp.einsum("bthd,bhds->bhts", q_BxTxHxD, k_BxHxDxS) * D**-0.5
        if self.causal:
            wei_BxHxTxS = jnp.where(k_pos_S[None, :] <= q_pos_T[:, None], wei_BxHxTxS, -jnp.inf)
        if kv_mask_BxS is not None:
            wei_BxHxTxS = jnp.where(kv_mask_BxS[:, None, None, :], wei_BxHxTxS, -jnp.inf)
        wei_BxHxTxS = jax.nn.softmax(wei_BxHxTxS.astype(jnp.float32), axis=-1)
        return jnp.einsum("bhts,bhds->bthd", wei_BxHxTxS.astype(v_BxHxDxS.dtype), v_BxHxDxS)

    def cached(self, name: str, new_BxTxHxD: jax.Array, start: jax.Array | int) -> jax.Array:
        """Writes this step's keys (or values) at `start`; returns every slot's."""
        B, _, H, D = new_BxTxHxD.shape
        cache = self.variable("cache", name, jnp.zeros, (B, H, D, self.config.block_size),
                              new_BxTxHxD.dtype)
        cache.value = jax.lax.dynamic_update_slice(cache.value, new_BxTxHxD.transpose(0, 2, 3, 1),
                                                   (0, 0, 0, start))
        return cache.value

    def source_keys_values(self, source_BxSxC: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The keys and values of a source being translated, transposed to (B, H, D, S):
        projected once, at the first call of a generation, then read from the cache."""
        if self.has_variable("cache", "source_key"):
            return self.get_variable("cache", "source_key"), self.get_variable("cache",
                                                                               "source_value")
        params = self.variables.get("params", {})
        if "key" in params:  # both in one product and one transpose: half the time of two
            dtype = self.config.compute_dtype
            kernel_2xCxHxD = jnp.stack([params["key"]["kernel"], params["value"]["kernel"]])
            kv_BxSx2xHxD = jnp.einsum("bsc,ichd->bsihd", source_BxSxC.astype(dtype),
                                      kernel_2xCxHxD.astype(dtype))
            if self.config.qk_norm:
                kv_BxSx2xHxD = kv_BxSx2xHxD.at[:, :, 0].set(
                    self.qk_norm("key_norm", kv_BxSx2xHxD[:, :, 0]))
        else:  # model.init with decode=True: the parameters are created here
            kv_BxSx2xHxD = jnp.stack([self.key(source_BxSxC),
                                      self.linear("value")(source_BxSxC)], axis=2)
        k_BxHxDxS, v_BxHxDxS = kv_BxSx2xHxD.transpose(2, 0, 3, 4, 1)
        self.put_variable("cache", "source_key", k_BxHxDxS)
        self.put_variable("cache", "source_value", v_BxHxDxS)
        return k_BxHxDxS, v_BxHxDxS

    def rotate(self, x_BxTxHxD: jax.Array, positions_T: jax.Array) -> jax.Array:
        """RoPE on every head: rope.rotate sees (B, H, T, D)."""
        x_BxHxTxD = x_BxTxHxD.swapaxes(1, 2)
        return rotate(x_BxHxTxD, positions_T, self.config.rope_base).swapaxes(1, 2)

    def qk_norm(self, name: str, x_BxTxHxD: jax.Array) -> jax.Array:
        if not self.config.qk_norm:
            return x_BxTxHxD
        return HeadsNorm(self.config.compute_dtype, name=name)(x_BxTxHxD)

    def linear(self, name: str) -> nn.DenseGeneral:
        """x_BxTxC → (B, T, H, D): all heads' projections, kernel (C, H, D) as the Heads'."""
        cfg = self.config
        return nn.DenseGeneral((cfg.n_head, cfg.head_size), use_bias=False, name=name,
                               dtype=cfg.compute_dtype, kernel_init=dense_init(cfg.init))
