"""The tiny GPT of the tests, and a config file of it for subprocess tests.

It imports nothing heavier than the config schema, so that a subprocess test's bad input is
refused before jax is imported, as a user's would be.
"""

import ml_collections

from gpt_jax.config import base_config


def tiny_config(**model) -> ml_collections.ConfigDict:
    """A GPT small enough to compile in about a second, with every switch on by default."""
    config = base_config()
    config.model.update({**dict(block_size=8, n_embd=16, n_head=2, n_layer=2), **model})
    config.train.update(dict(num_steps=20, batch_size=8, eval_interval=10, eval_iters=2,
                             log_interval=10, checkpoint_every=10,
                             loss_plot=False))  # test_report checks the plot
    config.sample.max_new_tokens = 0
    return config


def file_config() -> ml_collections.ConfigDict:
    """The GPT of this file, which the subprocess tests train: one block, which compiles
    faster than two, is enough for what they check (files, signals, errors, resumes)."""
    return tiny_config(n_layer=1)


def get_config():
    config = file_config()
    config.lock()
    return config
