"""The model ladder: from a bigram table to a GPT, built from a config's `model` section."""

import dataclasses

import flax.linen as nn
import ml_collections

from gpt_jax.models.attention import Head, MultiHeadAttention
from gpt_jax.models.bigram import BigramLanguageModel
from gpt_jax.models.block import Block, GPTConfig
from gpt_jax.models.feedforward import FeedForward
from gpt_jax.models.gpt import GPT

__all__ = ["BigramLanguageModel", "Block", "FeedForward", "GPT", "GPTConfig", "Head",
           "MultiHeadAttention", "build_model"]


def build_model(model_config: ml_collections.ConfigDict, vocab_size: int) -> nn.Module:
    """The language model a config names; vocab_size comes from the tokenizer, never the config."""
    if model_config.name == "bigram":
        return BigramLanguageModel(vocab_size)
    fields = {f.name for f in dataclasses.fields(GPTConfig)} - {"vocab_size"}
    return GPT(GPTConfig(vocab_size=vocab_size, **{k: model_config[k] for k in fields}))
