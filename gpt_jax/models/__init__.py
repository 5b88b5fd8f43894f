"""The model ladder: from a bigram table to a GPT, built from a config's `model` section."""

import dataclasses

import flax.linen as nn
import ml_collections

from gpt_jax.models.attention import Head, MultiHeadAttention
from gpt_jax.models.bigram import BigramLanguageModel
from gpt_jax.models.block import Block
from gpt_jax.models.feedforward import FeedForward
from gpt_jax.models.gpt import GPT, GPTConfig
from gpt_jax.models.mlp import MLPLanguageModel
from gpt_jax.models.ngram import NGramLanguageModel, require_table_fits

__all__ = ["BigramLanguageModel", "Block", "FeedForward", "GPT", "GPTConfig", "Head",
           "MLPLanguageModel", "MultiHeadAttention", "NGramLanguageModel", "build_model"]


def build_model(model_config: ml_collections.ConfigDict, vocab_size: int,
                check_memory: bool = True) -> nn.Module:
    """The language model a config names; vocab_size comes from the tokenizer, never the config.

    An n-gram table that would not fit in memory is refused here, before anything allocates,
    unless `check_memory` is off (for shapes only: jax.eval_shape never allocates).
    """
    m = model_config
    if m.name == "bigram":
        return BigramLanguageModel(vocab_size)
    if m.name == "ngram":
        if check_memory:
            require_table_fits(vocab_size, m.context)
        return NGramLanguageModel(vocab_size, m.context, m.block_size, m.init)
    if m.name == "mlp":
        return MLPLanguageModel(vocab_size, m.context, m.block_size, m.n_embd, m.mlp_hidden,
                                m.activation, m.init)
    fields = {f.name for f in dataclasses.fields(GPTConfig)} - {"vocab_size"}
    return GPT(GPTConfig(vocab_size=vocab_size, **{k: m[k] for k in fields}))
