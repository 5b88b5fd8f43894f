"""The position-wise MLP: after the tokens have communicated, each one thinks on its own."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from gpt_jax.models.dropout import Dropout
from gpt_jax.models.init import dense_init, proj_init

# The non-linearity of the hidden layer. "relu2" is ReLU squared (Primer, So et al. 2021).
# "swiglu" (Shazeer 2020) is SiLU on a gate that multiplies a second projection of the input:
# FeedForward adds the gate; any other model would apply a bare SiLU, so config.validate
# allows it in the feed-forward of a Transformer only.
ACTIVATION_FUNCTIONS = {"relu": nn.relu, "gelu": nn.gelu, "tanh": nn.tanh,
                        "relu2": lambda x: jnp.square(nn.relu(x)), "swiglu": nn.silu}


def hidden_width(config) -> int:
    """ffn_mult·C; for SwiGLU, whose three matrices would otherwise hold 1.5× the two of the
    plain MLP, round(2/3·ffn_mult·C): the same parameter count (Shazeer 2020, Llama)."""
    if config.activation == "swiglu":
        return round(2 * config.ffn_mult * config.n_embd / 3)
    return config.ffn_mult * config.n_embd


class FeedForward(nn.Module):
    """Linear (C → ffn_mult·C), non-linearity, then a projection back to C (`projections`,
    with dropout). The lecture's first version has no projection and ffn_mult = 1. SwiGLU:
    silu(gate(x)) · fc(x), both of the hidden width, then the projection."""

    config: object  # a GPTConfig's n_embd, ffn_mult, activation, projections, dropout, init,
    # bias, zero_init_proj
    deterministic: bool = True

    @nn.compact
    def __call__(self, x_BxTxC: jax.Array) -> jax.Array:
        cfg = self.config
        h_BxTxF = self.linear(hidden_width(cfg), dense_init(cfg.init), "fc")(x_BxTxC)
        if cfg.activation == "swiglu":
            gate_BxTxF = self.linear(hidden_width(cfg), dense_init(cfg.init), "gate")(x_BxTxC)
            h_BxTxF = ACTIVATION_FUNCTIONS["swiglu"](gate_BxTxF) * h_BxTxF
        else:
            h_BxTxF = ACTIVATION_FUNCTIONS[cfg.activation](h_BxTxF)
        if not cfg.projections:
            return h_BxTxF
        out_BxTxC = self.linear(cfg.n_embd, proj_init(cfg), "proj")(h_BxTxF)
        return Dropout(cfg.dropout, cfg.fused_dropout)(out_BxTxC,
                                                       deterministic=self.deterministic)

    def linear(self, features: int, kernel_init, name: str) -> nn.Dense:
        return nn.Dense(features, use_bias=self.config.bias, kernel_init=kernel_init,
                        dtype=self.config.compute_dtype, name=name)
