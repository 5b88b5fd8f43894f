"""The trigram table: the next character from the last two, a (vocab, vocab, vocab) table.

Widening the bigram's context by one character multiplies its table by the vocabulary size
(65 → 4,225 rows). Reference val loss ≈ 2.13: this project's own measurement (2-core CPU, 3000
steps at lr 1e-2); the lecture has no figure for it.
"""

from gpt_jax.config import base_config


def get_config():
    config = base_config()
    config.description = "trigram table: the next character from the last two"
    config.reference_val_loss = 2.13
    config.model.name = "ngram"
    config.model.context = 2  # n = 3
    config.train.num_steps = 3000
    config.train.learning_rate = 1e-2
    config.train.eval_interval = 300
    return config
