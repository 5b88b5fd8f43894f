"""The GPT: token + position embeddings, a stack of Blocks, a final LayerNorm, an LM head."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from gpt_jax.models.block import Block, GPTConfig
from gpt_jax.models.init import dense_init, embed_init


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
        if cfg.pos_emb:
            # Attention is permutation-invariant; adding a learned vector per position is what
            # tells it where each token sits.
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
            x_BxTxC = nn.LayerNorm(name="ln_f")(x_BxTxC)
        if cfg.tie_embeddings:
            return wte.attend(x_BxTxC)  # (B, T, V)
        return nn.Dense(cfg.vocab_size, kernel_init=dense_init(cfg.init), name="lm_head")(x_BxTxC)
