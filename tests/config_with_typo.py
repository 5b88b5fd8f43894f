"""A config file with a mistyped field: it must be refused, not train the default model."""

from gpt_jax.config import base_config


def get_config():
    config = base_config()
    config.model.n_layers = 3
    return config
