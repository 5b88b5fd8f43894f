"""The key/value cache of a head, for sampling: a new token's query attends to the keys and
values of every token before it, kept from earlier steps instead of computed again.

Legend: B batch, T new tokens, S cache slots (block_size), D head size.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


class KVCache(nn.Module):
    """A (B, block_size, D) store of keys and one of values, in the "cache" collection."""

    block_size: int

    @nn.compact
    def __call__(self, k_BxTxD: jax.Array, v_BxTxD: jax.Array, start: jax.Array | int):
        """Writes the new keys and values at position `start`; returns every slot's keys and
        values and their positions (slots not yet written are later positions, which the
        causal mask hides)."""
        B, _, D = k_BxTxD.shape
        out = []
        for name, new in (("cached_key", k_BxTxD), ("cached_value", v_BxTxD)):
            cache = self.variable("cache", name, jnp.zeros, (B, self.block_size, D), new.dtype)
            cache.value = jax.lax.dynamic_update_slice(cache.value, new, (0, start, 0))
            out.append(cache.value)
        return out[0], out[1], jnp.arange(self.block_size)
