"""The lecture's steps from one head of attention to LayerNorm, one idea each:
`--config=configs/lecture.py:STEP`. The whole ladder (gpt_jax/ladder_steps.py), with the
lecture's validation loss for each (batch 32, block 8, width 32, 5000 steps at lr 1e-3,
except where a step has its own file):
  bigram     ≈ 2.5   the (vocab, vocab) table                  (configs/bigram.py)
  head       ≈ 2.4   + positional embedding, one head of self-attention (size 32)
  multihead  ≈ 2.28  4 heads of size 8, concatenated
  ffwd       ≈ 2.24  + a feed-forward layer after attention
  residual   ≈ 2.08  3 blocks, residual connections, projections, 4x MLP
  layernorm  ≈ 2.06  + pre-norm LayerNorm in each block and before the LM head
  gpt_cpu    ≈ 1.88  a GPT sized for a CPU                     (configs/shakespeare_char_cpu.py)
  gpt        ≈ 1.48  the scaled-up GPT                          (configs/shakespeare_char.py)
"""

from gpt_jax.config import base_config
from gpt_jax.errors import UserError
from gpt_jax.ladder_steps import LECTURE


def get_config(step: str = "layernorm"):
    if step not in LECTURE:
        raise UserError(f"unknown lecture step {step!r}; choose one of {', '.join(LECTURE)}")
    reached = LECTURE[: LECTURE.index(step) + 1]
    config = base_config()
    m = config.model
    # One head of self-attention over token + position embeddings, straight into the LM head.
    config.description = "+ positional embedding and one self-attention head"
    config.reference_val_loss = 2.4
    m.n_layer, m.n_head = 1, 1
    # The lecture's models use PyTorch's default init, and before LayerNorm arrives their
    # losses depend on its scale (N(0, 1) embeddings): keep it to compare like with like.
    m.init = "torch"
    m.ffwd = m.residual = m.projections = m.layer_norm = False
    if "multihead" in reached:
        config.description = "4 heads of size 8 in parallel, concatenated"
        config.reference_val_loss = 2.28
        m.n_head = 4
    if "ffwd" in reached:
        config.description = "+ a feed-forward layer: tokens think on what they gathered"
        config.reference_val_loss = 2.24
        m.ffwd, m.ffn_mult = True, 1
    if "residual" in reached:
        config.description = "3 blocks with residual connections, projections and a 4x MLP"
        config.reference_val_loss = 2.08
        m.n_layer, m.residual, m.projections, m.ffn_mult = 3, True, True, 4
    if "layernorm" in reached:
        config.description = "+ pre-norm LayerNorm in every block and before the LM head"
        config.reference_val_loss = 2.06
        m.layer_norm = True
    return config
