"""The GPT: token (+ position) embeddings, a stack of Blocks, a final norm, an LM head."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from gpt_jax.models.block import Block, norm
from gpt_jax.models.init import dense_init, embed_init


@dataclasses.dataclass(frozen=True)
class GPTConfig:
    """Every switch of the lecture's ladder and of the fast GPT recipes past it (the `model`
    section of a config, whose field names these are); `configs/lecture.py` names the settings
    of each of the lecture's steps. The defaults are the lecture's GPT."""

    vocab_size: int
    block_size: int = 8
    n_embd: int = 32
    n_head: int = 4
    n_layer: int = 1
    pos_emb: str = "learned"  # learned: X' = X + P | rope: q and k rotated by their
    # positions in every head (models/rope.py) | none: attention alone, blind to order
    rope_base: float = 10000.0  # rope: pair i turns by rope_base^(-2i/D) per position
    ffwd: bool = True  # a FeedForward after attention
    ffn_mult: int = 4
    activation: str = "relu"  # relu | gelu | tanh | relu2 | swiglu (models/feedforward.py)
    residual: bool = True  # x + f(x) instead of f(x)
    projections: bool = True  # a Linear back into the residual stream after attention and MLP
    layer_norm: bool = True  # pre-norm LayerNorm in every block and before the LM head
    norm: str = "layernorm"  # which norm layer_norm puts there: layernorm | rmsnorm
    qk_norm: bool = False  # RMSNorm on each head's queries and keys before their dot product
    bias: bool = True  # False: no bias in any Linear, nor in LayerNorm (attention's q, k, v
    # never have one)
    zero_init_proj: bool = False  # attention's and the MLP's output projections start at 0
    logit_softcap: float = 0.0  # > 0: logits = cap·tanh(logits / cap), within ±cap; 0: off
    dropout: float = 0.0
    fused_dropout: bool = False  # the CPU fast path of the dropout masks (models/dropout.py)
    tie_embeddings: bool = False  # the LM head reuses the token embedding matrix
    init: str = "gpt2"  # gpt2 | torch (see models/init.py)
    compute_dtype: str = "float32"  # of the matmuls: bfloat16 is mixed precision; params,
    # the residual stream, LayerNorm, softmax and the loss stay float32
    query_chunk: int = 0  # > 0: causal attention by chunks of this many queries (same math)
    fused_decode: bool = False  # sampling (prefill and steps) by models/fused_heads.py (same math)

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head


class GPT(nn.Module):
    """A decoder-only Transformer over characters; logits_BxTxV for next-token prediction.

    With n_layer = 0 it is the lecture's embedding-and-LM-head model, before attention.
    """

    config: GPTConfig

    @nn.compact
    def __call__(self, idx_BxT: jax.Array, *, train: bool = False, decode: bool = False,
                 start: jax.Array | int = 0) -> jax.Array:
        cfg = self.config
        T = idx_BxT.shape[1]
        wte = nn.Embed(cfg.vocab_size, cfg.n_embd, embedding_init=embed_init(cfg.init),
                       name="token_embedding_table")
        x_BxTxC = wte(idx_BxT)
        if cfg.pos_emb == "learned":
            # Attention is blind to order; adding a learned vector per position is what tells
            # it where each token sits.
            wpe = nn.Embed(cfg.block_size, cfg.n_embd, embedding_init=embed_init(cfg.init),
                           name="position_embedding_table")
            x_BxTxC = x_BxTxC + wpe(start + jnp.arange(T))[None]
        # A no-op unless a "perturbations" collection is passed: tests take gradients with
        # respect to it to prove causality at the input of the Transformer.
        x_BxTxC = self.perturb("embeddings", x_BxTxC)
        for i in range(cfg.n_layer):
            x_BxTxC = Block(cfg, deterministic=not train, decode=decode, name=f"block_{i}")(
                x_BxTxC, start)
        if cfg.layer_norm:
            x_BxTxC = norm(cfg, "ln_f")(x_BxTxC)
        if cfg.tie_embeddings:
            logits_BxTxV = wte.attend(x_BxTxC)
        else:
            logits_BxTxV = nn.Dense(cfg.vocab_size, use_bias=cfg.bias,
                                    kernel_init=dense_init(cfg.init), name="lm_head")(x_BxTxC)
        if cfg.logit_softcap > 0:
            # Smooth and monotonic, so the argmax never changes; near 0 it is the identity,
            # and no logit can run away to where the softmax saturates (Gemma 2).
            cap = cfg.logit_softcap
            logits_BxTxV = cap * jnp.tanh(logits_BxTxV / cap)
        return logits_BxTxV
