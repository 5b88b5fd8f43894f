"""AdamW with decay on matrices only, warmup then constant or cosine LR, global-norm clipping;
or (train.optimizer=muon) Muon for the hidden matrices and that AdamW for everything else."""

import math

import jax
import ml_collections
import numpy as np
import optax
from optax.contrib import MuonDimensionNumbers


def learning_rate_schedule(train: ml_collections.ConfigDict,
                           peak: float | None = None) -> optax.Schedule:
    """Linear warmup from 0 to `learning_rate`, then constant or cosine down to the minimum.
    Another `peak` (Muon's rate) scales the whole schedule, its minimum included: one shape,
    two heights."""
    scale = 1.0 if peak is None else peak / train.learning_rate  # 1.0: AdamW's, to the bit
    peak, end = train.learning_rate * scale, train.min_learning_rate * scale
    warmup = train.warmup_steps
    if train.lr_schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(
            0.0, peak, warmup, decay_steps=max(train.num_steps, warmup + 1), end_value=end)
    if warmup == 0:
        return optax.constant_schedule(peak)
    return optax.join_schedules(
        [optax.linear_schedule(0.0, peak, warmup), optax.constant_schedule(peak)], [warmup])


def decay_mask(params):
    """Weight decay shrinks the matrices only (kernels, embedding tables): decaying biases and
    norms' gains toward zero would fight the normalization instead of regularizing. Chosen by
    name, not by ndim: the vmapped heads stack their QK-norm gains as a (D, H) array."""
    def decays(path, _):
        return getattr(path[-1], "key", path[-1]) not in ("bias", "scale")
    return jax.tree_util.tree_map_with_path(decays, params)


def muon_labels(params):
    """'muon' for the hidden matrices, the kernel of every Linear layer but the LM head
    (attention's query, key, value and output projection; the MLP's fc, gate and projection);
    'adamw' for the rest, as modded-nanogpt splits them: the embeddings and the LM head, which
    map tokens rather than hidden states (an orthogonalized update would move a rare token's
    row as much as a common one's), and the vectors: norms' gains and biases."""
    def label(path, _):
        names = [getattr(key, "key", key) for key in path]
        return "muon" if names[-1] == "kernel" and names[0] != "lm_head" else "adamw"
    return jax.tree_util.tree_map_with_path(label, params)


def matrix_axes(updates):
    """Each Muon leaf as one (fan_in, fan_out) matrix: axis 0 in, the rest out. The heads'
    query, key and value kernels, stacked (C, H, D), are so one (C, H·D) matrix: the Linear
    layer they are together (each head's columns side by side), as in nanoGPT's c_attn, not
    H thin (C, D) matrices orthogonalized apart."""
    return jax.tree.map(lambda u: MuonDimensionNumbers(0, tuple(range(1, u.ndim))), updates)


def width_scale(shape: tuple[int, ...]) -> float:
    """√max(1, fan_out / fan_in) (Jordan's Muon): an update with unit singular values has
    entries of RMS 1/√max(fan_in, fan_out); this makes it 1/√fan_in for a wide matrix (the
    MLP's fc) as for a square one."""
    return math.sqrt(max(1.0, math.prod(shape[1:]) / shape[0]))


def muon(train: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """Muon (Jordan et al. 2024): Nesterov momentum (β = 0.95) orthogonalized by
    train.muon_ns_steps Newton–Schulz iterations (optax.contrib.scale_by_muon), scaled by
    width_scale, decoupled weight decay, then muon_learning_rate on the schedule of
    learning_rate."""
    return optax.chain(
        optax.contrib.scale_by_muon(ns_steps=train.muon_ns_steps,
                                    weight_dimension_numbers=matrix_axes),
        optax.stateless_with_tree_map(lambda u, _: u * width_scale(u.shape)),
        optax.add_decayed_weights(train.muon_weight_decay),
        optax.scale_by_learning_rate(learning_rate_schedule(train, train.muon_learning_rate)))


def make_optimizer(train: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """Clipping at the global norm of every gradient, then AdamW; with optimizer=muon, Muon for
    the leaves muon_labels names and the same AdamW for the others."""
    adamw = optax.adamw(learning_rate_schedule(train), b1=train.beta1, b2=train.beta2,
                        weight_decay=train.weight_decay, mask=decay_mask)
    update = adamw if train.optimizer == "adamw" else optax.partition(
        {"muon": muon(train), "adamw": adamw}, muon_labels)
    if train.grad_clip > 0:
        return optax.chain(optax.clip_by_global_norm(train.grad_clip), update)
    return update


class LearningRates:
    """Each step's learning rate (of the schedule at `peak`, as learning_rate_schedule), read
    from a table computed a block of steps at a time.

    Asking the schedule (a jax function) for one step at a time would queue behind the train
    steps running on the device, so the host would wait for them instead of dispatching the
    next ones. A block of 65,536 steps is one small jitted computation (run op by op, its
    twenty operations would each compile apart: half a second of every run's start-up); a
    run of a billion steps never holds its whole table.
    """

    BLOCK = 1 << 16

    def __init__(self, train: ml_collections.ConfigDict, peak: float | None = None):
        self.num_steps = train.num_steps
        self._schedule = jax.jit(jax.vmap(learning_rate_schedule(train, peak)))
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


def reported_rates(train: ml_collections.ConfigDict) -> dict[str, LearningRates]:
    """The learning rates a run reports, by their name in metrics.jsonl: AdamW's "lr", and with
    optimizer=muon the Muon matrices' "muon_lr" too (the same schedule at muon_learning_rate),
    since AdamW's alone misstates what moves most of the weights."""
    rates = {"lr": LearningRates(train)}
    if train.optimizer == "muon":
        rates["muon_lr"] = LearningRates(train, train.muon_learning_rate)
    return rates
