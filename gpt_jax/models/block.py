"""A Transformer block: communication (attention) followed by computation (feed-forward)."""

import dataclasses

import flax.linen as nn
import jax

from gpt_jax.models.attention import MultiHeadAttention
from gpt_jax.models.feedforward import FeedForward


@dataclasses.dataclass(frozen=True)
class GPTConfig:
    """Every switch of the lecture's ladder; `configs/ladder.py` names the settings of each step."""

    vocab_size: int
    block_size: int = 8
    n_embd: int = 32
    n_head: int = 4
    n_layer: int = 1
    pos_emb: bool = True  # learned positional embedding, X' = X + P
    ffwd: bool = True  # a FeedForward after attention
    ffn_mult: int = 4
    activation: str = "relu"
    residual: bool = True  # x + f(x) instead of f(x)
    projections: bool = True  # a Linear back into the residual stream after attention and MLP
    layer_norm: bool = True  # pre-norm LayerNorm in every block and before the LM head
    dropout: float = 0.0
    tie_embeddings: bool = False  # the LM head reuses the token embedding matrix
    init: str = "gpt2"  # gpt2 | torch (see models/init.py)
    compute_dtype: str = "float32"  # of the matmuls: bfloat16 is mixed precision, params stay
    # float32 and so do the residual stream, LayerNorm, softmax and the loss
    query_chunk: int = 0  # > 0: causal attention by chunks of this many queries (same math)

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head


class Block(nn.Module):
    """x → x + attention(LN(x)) → x + feed-forward(LN(x)), each part behind its switch."""

    config: GPTConfig
    deterministic: bool = True
    decode: bool = False

    @nn.compact
    def __call__(self, x_BxTxC: jax.Array, start: jax.Array | int = 0) -> jax.Array:
        cfg = self.config
        norm = (lambda name: nn.LayerNorm(name=name)) if cfg.layer_norm else (lambda name: None)

        def sublayer(layer, norm_layer, x):
            y = layer(norm_layer(x) if norm_layer else x)
            return x + y if cfg.residual else y

        attention = MultiHeadAttention(
            cfg.n_head, cfg.head_size, cfg.block_size, cfg.n_embd, cfg.n_layer,
            causal=True, dropout=cfg.dropout, projections=cfg.projections,
            deterministic=self.deterministic, decode=self.decode, init_style=cfg.init,
            dtype=cfg.compute_dtype, query_chunk=cfg.query_chunk, name="sa")
        x_BxTxC = sublayer(lambda h: attention(h, None, start), norm("ln1"), x_BxTxC)
        if cfg.ffwd:
            ffwd = FeedForward(cfg.n_embd, cfg.ffn_mult, cfg.activation, cfg.n_layer,
                               cfg.dropout, cfg.projections, self.deterministic, cfg.init,
                               cfg.compute_dtype, name="ffwd")
            x_BxTxC = sublayer(ffwd, norm("ln2"), x_BxTxC)
        return x_BxTxC
