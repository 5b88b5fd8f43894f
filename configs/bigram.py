"""Ladder step 1, the bigram model: a (vocab, vocab) table of next-character logits.

Reference val loss ≈ 2.5 (the lecture, 3000 steps at lr 1e-2).
"""

from gpt_jax.config import base_config


def get_config():
    config = base_config()
    config.description = "bigram table: the next character from the current one alone"
    config.reference_val_loss = 2.5
    config.model.name = "bigram"
    config.train.num_steps = 3000
    config.train.learning_rate = 1e-2
    config.train.eval_interval = 300
    return config
