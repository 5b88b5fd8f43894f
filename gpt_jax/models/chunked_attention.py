"""Causal attention one chunk of queries at a time: a fast path of Head (model.query_chunk).

The chunk of queries ending at t attends to keys [0, t) only, so the masked upper triangle
of the (T, T) scores is never computed (T / chunk = 4 computes 10 of 16 blocks), and each
chunk's scores are small enough to stay in a CPU's cache. Equal to the full attention up to
float rounding; measured in benchmarks/README.md.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp


def chunked_causal_attention(attend: Callable, q_BxTxD: jax.Array, k_BxTxD: jax.Array,
                             v_BxTxD: jax.Array, chunk: int) -> jax.Array:
    """`attend(q, k, v, q_pos, k_pos)` (Head.attend) over chunks of queries, concatenated."""
    T = q_BxTxD.shape[1]
    pos = jnp.arange(T)
    out = []
    for t0 in range(0, T, chunk):
        t1 = min(t0 + chunk, T)
        out.append(attend(q_BxTxD[:, t0:t1], k_BxTxD[:, :t1], v_BxTxD[:, :t1], pos[t0:t1],
                          pos[:t1]))
    return jnp.concatenate(out, axis=1)
