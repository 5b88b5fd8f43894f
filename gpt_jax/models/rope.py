"""Rotary position embeddings (Su et al. 2021, RoFormer): `model.pos_emb="rope"`.

Instead of adding a learned vector per position to the tokens, every query and key is turned
by an angle proportional to its position: pair i of its channels by position·θ_i, with
θ_i = base^(-2i/D), from 1 radian per position down to about 1/base. A rotation keeps each
vector's length, and turning q by i·θ and k by j·θ turns their dot product by (i − j)·θ only:
attention sees how far apart two tokens are, never where they are.

Keys are rotated by their own position before they enter the KV cache, and a decode step at
`start` rotates its query by `start + t`, so the cache needs nothing new. Sampling past
block_size slides the window and prefills it again from position 0 (generation.py): the
positions restart, the offsets between tokens are unchanged, and no position ever reaches
block_size, the longest context the model was trained on.

Legend: B batch, T time, D head size (even).
"""

import jax
import jax.numpy as jnp


def frequencies(D: int, base: float) -> jax.Array:
    """θ_i = base^(-2i/D) for i < D/2: how far pair i turns per position."""
    return base ** (-jnp.arange(0, D, 2, dtype=jnp.float32) / D)


def rotate(x_BxTxD: jax.Array, positions_T: jax.Array, base: float = 10000.0) -> jax.Array:
    """Each vector turned by its position: channels i and i + D/2 form pair i (the halves
    layout of GPT-NeoX and Llama; adjacent pairs are the same up to an order of the channels,
    which the learned projections absorb). Computed in float32 whatever x's dtype."""
    angles_TxD2 = positions_T[:, None].astype(jnp.float32) * frequencies(x_BxTxD.shape[-1],
                                                                          base)[None]
    cos_TxD2, sin_TxD2 = jnp.cos(angles_TxD2), jnp.sin(angles_TxD2)
    x1_BxTxD2, x2_BxTxD2 = jnp.split(x_BxTxD.astype(jnp.float32), 2, axis=-1)
    rotated_BxTxD = jnp.concatenate([x1_BxTxD2 * cos_TxD2 - x2_BxTxD2 * sin_TxD2,
                                     x1_BxTxD2 * sin_TxD2 + x2_BxTxD2 * cos_TxD2], axis=-1)
    return rotated_BxTxD.astype(x_BxTxD.dtype)
