"""The mathematical trick behind self-attention: a causal running average, three ways.

Each function maps x (B, T, C) to xbow (B, T, C) with xbow[b, t] = mean(x[b, :t+1]).
All three give the same numbers; the third is the form attention generalizes, where the
uniform weights become data-dependent affinities.
"""

import jax
import jax.numpy as jnp


def running_average_loop(x_BxTxC: jax.Array) -> jax.Array:
    """Version 1: an explicit loop over time, averaging every prefix."""
    T = x_BxTxC.shape[1]
    return jnp.stack([x_BxTxC[:, : t + 1].mean(axis=1) for t in range(T)], axis=1)


def running_average_matmul(x_BxTxC: jax.Array) -> jax.Array:
    """Version 2: one matmul with a lower-triangular matrix whose rows sum to one."""
    T = x_BxTxC.shape[1]
    wei_TxT = jnp.tril(jnp.ones((T, T)))
    wei_TxT = wei_TxT / wei_TxT.sum(axis=1, keepdims=True)
    return wei_TxT @ x_BxTxC


def running_average_softmax(x_BxTxC: jax.Array) -> jax.Array:
    """Version 3: softmax over zero affinities with the future masked to -inf.

    exp(-inf) = 0, so future tokens get exactly zero weight and the rest share it equally.
    """
    T = x_BxTxC.shape[1]
    affinities_TxT = jnp.zeros((T, T))
    affinities_TxT = jnp.where(jnp.tril(jnp.ones((T, T), bool)), affinities_TxT, -jnp.inf)
    return jax.nn.softmax(affinities_TxT, axis=-1) @ x_BxTxC
