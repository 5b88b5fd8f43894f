"""The tiny GPT of the tests, and a config file of it for subprocess tests.

It imports nothing heavier than the config schema, so that a subprocess test's bad input is
refused before jax is imported, as a user's would be.
"""

import ml_collections

from gpt_jax.config import SMALL_MODELS_READ, base_config


def tiny_config(**model) -> ml_collections.ConfigDict:
    """A GPT small enough to compile in about a second, with every switch on by default (or
    the bigram, n-gram or mlp model named, with the block of 8 and the fields given)."""
    config = base_config()
    small = model.get("name") in SMALL_MODELS_READ  # a GPT's sizes would be fields it ignores
    sizes = dict(block_size=8) if small else dict(block_size=8, n_embd=16, n_head=2, n_layer=2)
    config.model.update({**sizes, **model})
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
