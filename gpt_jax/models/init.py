"""Weight initialization: GPT-2 style, or PyTorch's defaults as the lecture's steps used.

"gpt2": normal(0.02) weights and embeddings, residual projections scaled by 1/sqrt(2·n_layer).
"torch": nn.Linear's U(±1/sqrt(fan_in)) weights and nn.Embedding's N(0, 1). The small models
of the lecture have no LayerNorm until late, so their losses depend on this larger scale.
`zero_init_proj` (either style) starts the projections into the residual stream at zero.
"""

import math

import flax.linen as nn

STD = 0.02
def dense_init(style: str = "gpt2", n_layer: int | None = None) -> nn.initializers.Initializer:
    """Kernel init of a Linear layer; pass n_layer for a projection into the residual stream."""
    if style == "torch":
        return nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")
    if n_layer is None:
        return nn.initializers.normal(STD)
    # Each block adds two residual branches, so shrink them to keep the residual stream's
    # variance O(1) however deep the model.
    return nn.initializers.normal(STD / math.sqrt(2 * max(n_layer, 1)))


def proj_init(config) -> nn.initializers.Initializer:
    """Kernel init of a projection back into the residual stream (attention's and the MLP's).

    With `zero_init_proj` it is zero, so every block starts as the identity on the stream and
    the network as its embeddings and LM head (modded-nanogpt); the projections' gradients are
    not zero, so they move at the first step and the layers before them at the next.
    """
    if config.zero_init_proj:
        return nn.initializers.zeros
    return dense_init(config.init, config.n_layer)


def embed_init(style: str = "gpt2") -> nn.initializers.Initializer:
    return nn.initializers.normal(1.0 if style == "torch" else STD)
