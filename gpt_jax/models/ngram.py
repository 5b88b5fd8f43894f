"""The n-gram model: the bigram table widened to the last n-1 characters.

Its size is the lecture's argument for attention: one row of logits for every combination of
the last n-1 characters is V^(n-1)·V parameters, exponential in the context.
Legend: B batch, T time, V vocab, K context = n-1, W = K-1+T window.
"""

import decimal

import flax.linen as nn
import jax

from gpt_jax.errors import UserError
from gpt_jax.memory import available_memory
from gpt_jax.models.init import embed_init
from gpt_jax.models.window import ContextWindow, shifted

# float32 params, gradients and Adam's two moments, and the new params and moments a step
# writes: a 1.2e9-entry table (n=5) ran out of 24 GiB in its first step.
BYTES_PER_PARAM = 32


class NGramLanguageModel(nn.Module):
    """A learned table with one axis per context character and the logits last, shape
    (V,) * (K+1): table[a, b] is the row of logits after "ab". Nothing is counted; the rows
    are trained by gradient descent like the bigram's, which is the case K = 1."""

    vocab_size: int
    context: int
    block_size: int
    init_style: str = "gpt2"

    @nn.compact
    def __call__(self, idx_BxT: jax.Array, *, train: bool = False, decode: bool = False,
                 start: jax.Array | int = 0) -> jax.Array:
        del train  # nothing random
        shape = (self.vocab_size,) * (self.context + 1)
        table = self.param("table", embed_init(self.init_style), shape)
        window_BxW = ContextWindow(self.context, self.block_size, decode, name="window")(
            idx_BxT, start)
        return table[tuple(shifted(window_BxW, self.context))]  # (B, T, V)


def sci(count: int) -> str:
    """7.5e10: a count in one short form, even one too large for a float."""
    return f"{decimal.Decimal(count):.1e}".replace("e+", "e")


def require_table_fits(vocab_size: int, context: int,
                       memory: tuple[int, str] | None = None) -> None:
    """Refuses, with the numbers, an n-gram whose training state would not fit in memory,
    before anything is allocated."""
    V, n = vocab_size, context + 1
    count = V**n
    need = BYTES_PER_PARAM * count
    limit, owner = memory or available_memory()
    if need > limit:
        gib = need // 2**30
        size = f"{gib:,} GiB" if gib < 10**6 else f"{sci(gib)} GiB"
        raise UserError(f"an n-gram table for n={n} has {V}^{context}·{V} = {sci(count)} "
                        f"parameters ({size} to train: params, grads, Adam state and their "
                        f"updates); {owner} {limit / 2**30:.0f} GiB: lower model.context")
