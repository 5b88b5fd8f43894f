"""The last `context` token ids at every position: the input of the models that see a fixed
window of characters instead of attending over the whole block (the n-gram table and the MLP).

Positions before the start of the sequence read token id 0 (the newline, in tiny Shakespeare: a
window that runs off the start looks like the start of a line). Any fixed id would do; it keeps
the parameter count independent of the position, and position t reads ids t-K+1 .. t only.
Legend: B batch, T time, K context, W = K-1+T window.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


class ContextWindow(nn.Module):
    """idx_BxT preceded by the K-1 ids before its first position: (B, W).

    With `decode`, every id seen so far is kept in a (B, block_size) cache and idx_BxT is
    written at `start`, so tokens can be added one at a time as sampling.decode_step does.
    """

    context: int
    block_size: int
    decode: bool = False

    @nn.compact
    def __call__(self, idx_BxT: jax.Array, start: jax.Array | int = 0) -> jax.Array:
        B, T = idx_BxT.shape
        before = ((0, 0), (self.context - 1, 0))  # id 0 before the start of the sequence
        if not self.decode:
            return jnp.pad(idx_BxT, before)
        ids = self.variable("cache", "ids", jnp.zeros, (B, self.block_size), jnp.int32)
        ids.value = jax.lax.dynamic_update_slice(ids.value, idx_BxT.astype(jnp.int32), (0, start))
        return jax.lax.dynamic_slice(jnp.pad(ids.value, before), (0, start),
                                     (B, self.context - 1 + T))


def shifted(window_BxW: jax.Array, context: int) -> list[jax.Array]:
    """K views of a window (of ids, or of their embeddings), each (B, T, ...): view k holds at
    position t what stood K-1-k positions earlier, so the last view is the sequence itself."""
    T = window_BxW.shape[1] - context + 1
    return [window_BxW[:, k : k + T] for k in range(context)]
