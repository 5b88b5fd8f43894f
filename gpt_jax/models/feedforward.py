"""The position-wise MLP: after tokens communicate, each one thinks on its own."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from gpt_jax.models.dropout import Dropout
from gpt_jax.models.init import dense_init

ACTIVATIONS = {"relu": nn.relu, "gelu": nn.gelu, "tanh": nn.tanh}


class FeedForward(nn.Module):
    """Linear (C → mult·C), non-linearity, then a projection back to C (`projections`, with
    dropout). The lecture's first version has no projection and mult = 1."""

    n_embd: int
    mult: int = 4
    activation: str = "relu"
    n_layer: int = 1
    dropout: float = 0.0
    projections: bool = True
    deterministic: bool = True
    init_style: str = "gpt2"
    dtype: jnp.dtype = jnp.float32  # of the matmuls

    @nn.compact
    def __call__(self, x_BxTxC: jax.Array) -> jax.Array:
        h_BxTxF = nn.Dense(self.mult * self.n_embd, kernel_init=dense_init(self.init_style),
                           dtype=self.dtype, name="fc")(x_BxTxC)
        h_BxTxF = ACTIVATIONS[self.activation](h_BxTxF)
        if not self.projections:
            return h_BxTxF
        out_BxTxC = nn.Dense(self.n_embd, kernel_init=dense_init(self.init_style, self.n_layer),
                             dtype=self.dtype, name="proj")(h_BxTxF)
        return Dropout(self.dropout)(out_BxTxC, deterministic=self.deterministic)
