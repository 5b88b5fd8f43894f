"""Dropout: in training, each activation is zeroed with probability `rate` and the survivors
are scaled by 1 / (1 - rate), so the expected activation is unchanged and evaluation, which
keeps everything, needs no rescaling (Srivastava et al. 2014).

The mask is drawn with `jax.random.bernoulli`, as in the lecture. `fused=True` swaps in masks
of the same Bernoulli distribution hashed inside the fusion that applies them
(models/fused_dropout.py): other draws than jax.random.bernoulli's, so a run takes another
path; a CPU speed trick, measured to pay there (benchmarks/README.md).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from gpt_jax.models.fused_dropout import keep_mask


class Dropout(nn.Module):
    rate: float
    fused: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
        if deterministic or self.rate == 0.0:
            return x
        key = self.make_rng("dropout")
        if self.fused:
            keep = keep_mask(key, x.shape, self.rate)
        else:
            keep = jax.random.bernoulli(key, 1.0 - self.rate, x.shape)
        return jnp.where(keep, x / (1.0 - self.rate), jnp.zeros_like(x))
