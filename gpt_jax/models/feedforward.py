"""The position-wise MLP: after the tokens have communicated, each one thinks on its own."""

import flax.linen as nn
import jax

from gpt_jax.models.dropout import Dropout
from gpt_jax.models.init import dense_init

ACTIVATIONS = {"relu": nn.relu, "gelu": nn.gelu, "tanh": nn.tanh}


class FeedForward(nn.Module):
    """Linear (C → ffn_mult·C), non-linearity, then a projection back to C (`projections`,
    with dropout). The lecture's first version has no projection and ffn_mult = 1."""

    config: object  # a GPTConfig's n_embd, ffn_mult, activation, projections, dropout, init
    deterministic: bool = True

    @nn.compact
    def __call__(self, x_BxTxC: jax.Array) -> jax.Array:
        cfg = self.config
        h_BxTxF = nn.Dense(cfg.ffn_mult * cfg.n_embd, kernel_init=dense_init(cfg.init),
                           dtype=cfg.compute_dtype, name="fc")(x_BxTxC)
        h_BxTxF = ACTIVATIONS[cfg.activation](h_BxTxF)
        if not cfg.projections:
            return h_BxTxF
        out_BxTxC = nn.Dense(cfg.n_embd, kernel_init=dense_init(cfg.init, cfg.n_layer),
                             dtype=cfg.compute_dtype, name="proj")(h_BxTxF)
        return Dropout(cfg.dropout, cfg.fused_dropout)(out_BxTxC,
                                                       deterministic=self.deterministic)
