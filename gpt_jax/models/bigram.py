"""The bigram model: the next character's logits are read from a table row of the current one."""

import flax.linen as nn
import jax

from gpt_jax.models.init import embed_init


class BigramLanguageModel(nn.Module):
    """A (vocab, vocab) table; row i holds the logits of the character that follows i."""

    vocab_size: int

    @nn.compact
    def __call__(self, idx_BxT: jax.Array, *, train: bool = False, decode: bool = False,
                 start: jax.Array | int = 0) -> jax.Array:
        del train, decode, start  # no context beyond the current character, so nothing to cache
        return nn.Embed(self.vocab_size, self.vocab_size, embedding_init=embed_init(),
                        name="token_embedding_table")(idx_BxT)  # (B, T, V)
