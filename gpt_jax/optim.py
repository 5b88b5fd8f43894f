"""AdamW with decay on matrices only, warmup then constant or cosine LR, global-norm clipping."""

import jax
import ml_collections
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
