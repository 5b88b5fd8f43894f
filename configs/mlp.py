"""The concatenated-embedding MLP (Bengio et al. 2003) over the last 8 characters.

Reference val loss ≈ 1.85: this project's own measurement (2-core CPU, 5000 steps); the lecture
has no figure for it.
"""

from gpt_jax.config import base_config


def get_config():
    config = base_config()
    config.description = "MLP over the concatenated embeddings of the last 8 characters"
    config.reference_val_loss = 1.85
    m, t = config.model, config.train
    m.name, m.context, m.block_size = "mlp", 8, 32
    m.n_embd, m.mlp_hidden, m.activation = 16, 256, "tanh"
    # N(0, 1) embeddings, as Bengio and PyTorch have them: at GPT-2's 0.02 the tanh layer starts
    # almost linear and this model, with no LayerNorm, learns far slower.
    m.init = "torch"
    t.num_steps, t.learning_rate = 5000, 1e-3
    return config
