"""AdamW with decay on matrices only, warmup then constant or cosine LR, global-norm clipping."""

import jax
import ml_collections
import numpy as np
import optax


def learning_rate_schedule(train: ml_collections.ConfigDict) -> optax.Schedule:
    """Linear warmup from 0 to `learning_rate`, then constant or cosine down to the minimum."""
    warmup = train.warmup_steps
    if train.lr_schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(
            0.0, train.learning_rate, warmup, decay_steps=max(train.num_steps, warmup + 1),
            end_value=train.min_learning_rate)
    if warmup == 0:
        return optax.constant_schedule(train.learning_rate)
    return optax.join_schedules(
        [optax.linear_schedule(0.0, train.learning_rate, warmup),
         optax.constant_schedule(train.learning_rate)], [warmup])


def decay_mask(params):
    """Weight decay shrinks matrices (ndim >= 2) only: decaying biases and LayerNorm gains
    toward zero would fight the normalization instead of regularizing."""
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(train: ml_collections.ConfigDict) -> optax.GradientTransformation:
    adamw = optax.adamw(learning_rate_schedule(train), b1=train.beta1, b2=train.beta2,
                        weight_decay=train.weight_decay, mask=decay_mask)
    if train.grad_clip > 0:
        return optax.chain(optax.clip_by_global_norm(train.grad_clip), adamw)
    return adamw


class LearningRates:
    """Each step's learning rate, read from a table computed a block of steps at a time.

    Asking the schedule (a jax function) for one step at a time would queue behind the train
    steps running on the device, so the host would wait for them instead of dispatching the
    next ones. A block of 65,536 steps is one small computation; a run of a billion steps
    never holds its whole table.
    """

    BLOCK = 1 << 16

    def __init__(self, train: ml_collections.ConfigDict):
        self.num_steps = train.num_steps
        self._schedule = jax.vmap(learning_rate_schedule(train))
        self._block = (-1, np.zeros(0, np.float32))

    def at(self, step: int) -> float:
        """The rate of the update that step `step` applies (0-based, as optax counts)."""
        index, table = self._block
        if step // self.BLOCK != index:
            index = step // self.BLOCK
            table = np.asarray(self._schedule(np.arange(index * self.BLOCK,
                                                        (index + 1) * self.BLOCK)))
            self._block = (index, table)
        return float(table[step % self.BLOCK])

    def after(self, step: int) -> float:
        """The rate of the update that ended at `step`; every schedule holds its last value
        past num_steps (a run resumed with fewer steps than it has done)."""
        return self.at(min(max(step - 1, 0), self.num_steps - 1))
