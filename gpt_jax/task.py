"""What a run trains on, chosen by data.task: the next character of a text (text_task.py,
the lecture's) or source → target pairs (pairs_task.py). The trainer, the steps and the
restore code see only what both provide."""

from __future__ import annotations

import ml_collections

from gpt_jax.models import build_model
from gpt_jax.pairs_task import PairsTask, pairs_inputs, pairs_model, pairs_tokens_per_step
from gpt_jax.text_task import TextTask

Task = TextTask | PairsTask


def load_task(config: ml_collections.ConfigDict) -> Task:
    """The task of a config, its data read and checked."""
    return PairsTask.load(config) if config.data.task == "pairs" else TextTask.load(config)


def task_model(config: ml_collections.ConfigDict, vocab_size: int):
    """The model a run's config builds, and its example inputs: from the config and the
    vocabulary alone, so that a run restores without its data."""
    if config.data.task == "pairs":
        return pairs_model(config, vocab_size), pairs_inputs(config)
    return build_model(config.model, vocab_size), config.model.block_size


def tokens_per_step(config: ml_collections.ConfigDict) -> int:
    """The tokens one train step reads, which the trainer's tokens/s counts."""
    if config.data.task == "pairs":
        return pairs_tokens_per_step(config)
    return config.train.batch_size * config.model.block_size
