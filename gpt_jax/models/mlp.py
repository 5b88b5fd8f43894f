"""The concatenated-embedding MLP of Bengio et al. (2003): a wider context, paid for linearly.

Legend: B batch, T time, V vocab, K context, W = K-1+T window, E embedding, H hidden.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from gpt_jax.models.feedforward import ACTIVATION_FUNCTIONS
from gpt_jax.models.init import dense_init, embed_init
from gpt_jax.models.window import ContextWindow, shifted


class MLPLanguageModel(nn.Module):
    """Embeds each of the last K characters, concatenates the K embeddings, and maps them
    through one hidden layer to the next character's logits, at every position.

    Each character of context owns its own (E, H) block of the hidden layer, so the parameters
    grow by E·H per character: linear in the context, where attention shares its weights.
    """

    vocab_size: int
    context: int
    block_size: int
    n_embd: int = 16
    hidden: int = 128
    activation: str = "tanh"
    init_style: str = "gpt2"

    @nn.compact
    def __call__(self, idx_BxT: jax.Array, *, train: bool = False, decode: bool = False,
                 start: jax.Array | int = 0) -> jax.Array:
        del train  # nothing random
        K = self.context
        window_BxW = ContextWindow(K, self.block_size, decode, name="window")(idx_BxT, start)
        emb_BxWxE = nn.Embed(self.vocab_size, self.n_embd, name="token_embedding_table",
                             embedding_init=embed_init(self.init_style))(window_BxW)
        # A no-op unless a "perturbations" collection is passed: tests take gradients with
        # respect to it, at the sequence's own positions, to prove causality.
        emb_BxWxE = jnp.concatenate(
            [emb_BxWxE[:, : K - 1], self.perturb("embeddings", emb_BxWxE[:, K - 1 :])], axis=1)
        x_BxTxKE = jnp.concatenate(shifted(emb_BxWxE, K), axis=-1)
        h_BxTxH = nn.Dense(self.hidden, kernel_init=dense_init(self.init_style),
                           name="hidden")(x_BxTxKE)
        h_BxTxH = ACTIVATION_FUNCTIONS[self.activation](h_BxTxH)
        return nn.Dense(self.vocab_size, kernel_init=dense_init(self.init_style),
                        name="lm_head")(h_BxTxH)  # (B, T, V)
