"""A Transformer block: communication (attention) followed by computation (feed-forward),
each wrapped in a pre-norm LayerNorm (or RMSNorm) and a residual connection."""

import flax.linen as nn
import jax

from gpt_jax.models.attention import MultiHeadAttention
from gpt_jax.models.feedforward import FeedForward


def norm(config, name: str) -> nn.Module:
    """The norm a config names: LayerNorm, (x − mean) / std · γ + β (β only with `bias`), or
    RMSNorm, x / RMS(x) · γ (Zhang & Sennrich 2019), which skips the mean and has no β. Both
    with flax's ε = 1e-6, inside the square root."""
    if config.norm == "rmsnorm":
        return nn.RMSNorm(name=name)
    return nn.LayerNorm(use_bias=config.bias, name=name)


class Block(nn.Module):
    """x + attention(LN(x)), then x + feed-forward(LN(x)): each part behind its switch of the
    ladder (layer_norm, residual, ffwd), so that switching them off gives the lecture's
    earlier forms."""

    config: object  # a GPTConfig
    deterministic: bool = True
    decode: bool = False

    @nn.compact
    def __call__(self, x_BxTxC: jax.Array, start: jax.Array | int = 0) -> jax.Array:
        cfg = self.config
        attention = MultiHeadAttention(cfg, causal=True, deterministic=self.deterministic,
                                       decode=self.decode, name="sa")
        x_BxTxC = self.residual(x_BxTxC, attention(self.pre_norm("ln1", x_BxTxC), start=start))
        if cfg.ffwd:
            ffwd = FeedForward(cfg, deterministic=self.deterministic, name="ffwd")
            x_BxTxC = self.residual(x_BxTxC, ffwd(self.pre_norm("ln2", x_BxTxC)))
        return x_BxTxC

    def pre_norm(self, name: str, x_BxTxC: jax.Array) -> jax.Array:
        """A norm on the way into a sublayer (GPT-2's pre-norm; the original Transformer
        normalized after the residual sum), keeping the residual stream itself untouched."""
        return norm(self.config, name)(x_BxTxC) if self.config.layer_norm else x_BxTxC

    def residual(self, x_BxTxC: jax.Array, y_BxTxC: jax.Array) -> jax.Array:
        """x + f(x): the sublayer adds to the stream instead of replacing it, so gradients
        reach the early layers unchanged along the sum."""
        return x_BxTxC + y_BxTxC if self.config.residual else y_BxTxC
