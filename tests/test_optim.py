"""The optimizer, tested through what it does to parameters, against AdamW and the schedule
written out in NumPy (tests/reference.py): the first updates during warmup, clipped updates,
the rate applied at step t, decay on matrices only.

Tolerance: the optimizer runs in float32; over a dozen updates of size ~lr its parameters
differ from float64 arithmetic by a few float32 ulps of their value (values of order 1,
ulp 1.2e-7), so 1e-6 absolute holds, while a wrong rate, moment or clip moves a parameter
by at least 1e-2 · lr = 1e-5 per step, and usually far more.
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
import reference as ref

from conftest import tiny_config
from gpt_jax.models import build_model
from gpt_jax.optim import LearningRates, learning_rate_schedule, make_optimizer
from gpt_jax.state import init_state
from gpt_jax.steps import make_loss_fn, make_train_step, replicate, shard, unreplicate

ATOL = 1e-6  # float32 against float64 over a dozen updates: see the module docstring


def _train(**settings) -> ml_collections.ConfigDict:
    train = tiny_config().train
    train.update(dict(num_steps=12, learning_rate=1e-2, weight_decay=0.1, beta1=0.9,
                      beta2=0.95, grad_clip=1.0, lr_schedule="cosine", warmup_steps=4,
                      min_learning_rate=1e-3))
    train.update(settings)
    return train


def _gradients(steps: int, seed: int = 0):
    """Gradients whose global norm swings from 0.05 to 20: some are clipped, some are not."""
    rng = np.random.default_rng(seed)
    for t in range(steps):
        scale = [0.05, 20.0, 0.5, 3.0][t % 4]
        yield {"kernel": scale * rng.standard_normal((3, 4)) / 3.5,
               "bias": scale * rng.standard_normal(4) / 3.5}


SETTINGS = {
    "warmup_then_cosine": {},
    "constant_after_warmup": dict(lr_schedule="constant"),
    "constant_without_warmup": dict(lr_schedule="constant", warmup_steps=0),
    "cosine_without_warmup": dict(warmup_steps=0),
    "cosine_longer_than_the_run": dict(num_steps=40),
    "no_clipping": dict(grad_clip=0.0),
    "tight_clipping": dict(grad_clip=0.1),
    "other_betas": dict(beta1=0.5, beta2=0.999),
    "no_weight_decay": dict(weight_decay=0.0),
    "strong_weight_decay": dict(weight_decay=1.0),
}


@pytest.mark.parametrize("settings", SETTINGS.values(), ids=SETTINGS.keys())
def test_every_update_equals_adamw_written_out(settings):
    """Twelve updates of make_optimizer (the trainer's), each equal to the reference's: the
    schedule's rate at that step, clipping at the global norm, bias-corrected moments, and
    weight decay on the matrix only."""
    train = _train(**settings)
    params = {"kernel": np.linspace(-1, 1, 12).reshape(3, 4), "bias": np.linspace(0.5, -0.5, 4)}
    optimizer = make_optimizer(train)
    ours = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
    state = optimizer.init(ours)
    expected = ref.AdamW(train, params)
    for t, grads in enumerate(_gradients(train.num_steps)):
        updates, state = optimizer.update(jax.tree.map(jnp.float32, grads), state, ours)
        ours = optax.apply_updates(ours, updates)
        params = expected.step(params, grads)
        for name in params:
            np.testing.assert_allclose(ours[name], params[name], rtol=0, atol=ATOL,
                                       err_msg=f"{name} after update {t}")


def test_the_first_update_of_a_warmup_is_zero_and_the_next_are_its_fractions():
    """Linear warmup from 0: update t moves a parameter by lr·t/warmup (Adam's first steps on a
    constant gradient are ±1 per unit of rate), never by the next step's rate."""
    train = _train(warmup_steps=4, weight_decay=0.0, grad_clip=0.0)
    optimizer = make_optimizer(train)
    p = {"w": jnp.zeros((2, 2))}
    state = optimizer.init(p)
    moves = []
    for _ in range(6):
        updates, state = optimizer.update({"w": jnp.ones((2, 2))}, state, p)
        moves.append(-float(updates["w"][0, 0]))
    np.testing.assert_allclose(moves[:5], [0.0, 2.5e-3, 5e-3, 7.5e-3, 1e-2], rtol=1e-5)
    assert moves[5] < 1e-2  # the cosine has begun


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_the_schedule_and_the_reported_rates_are_the_notes_formula(schedule):
    train = _train(lr_schedule=schedule, num_steps=50, warmup_steps=10)
    lr = learning_rate_schedule(train)
    table = LearningRates(train)
    for t in range(0, 60, 3):
        assert float(lr(t)) == pytest.approx(ref.learning_rate(min(t, 50), train), rel=1e-6,
                                             abs=1e-12)
        # A record at step t reports the rate of the update that ended there (update t-1).
        assert table.after(t) == pytest.approx(ref.learning_rate(min(max(t - 1, 0), 49), train),
                                               rel=1e-6, abs=1e-12)


def test_the_train_step_applies_the_optimizer_to_the_gradient_of_the_loss():
    """One step of the trainer's pmapped train step moves the params by exactly the
    optimizer's update of the batch's gradient, computed here outside of it."""
    config = tiny_config()
    model = build_model(config.model, 65)
    train = _train(num_steps=5, warmup_steps=0)  # update 0 at the full rate, not at 0
    optimizer = make_optimizer(train)
    state = init_state(model, optimizer, 0, 8)
    data = np.random.default_rng(1).integers(0, 65, size=(1, 1, 8, 9)).astype(np.int32)
    x, y = data[..., :-1], data[..., 1:]
    grads = jax.jit(jax.grad(make_loss_fn(model)))(state.params, x[0, 0], y[0, 0])
    updates, _ = jax.jit(optimizer.update)(grads, state.opt_state, state.params)
    expected = optax.apply_updates(state.params, updates)
    rows = shard(np.arange(8, dtype=np.int32).reshape(1, 1, 8))
    new, metrics = make_train_step(model, optimizer, seed=0)(replicate(state), shard(x),
                                                             shard(y), rows)
    moved = max(float(np.abs(a - b).max()) for a, b in zip(
        jax.tree.leaves(expected), jax.tree.leaves(state.params), strict=True))
    assert moved > 5e-3, moved  # AdamW's first update: ~the rate, 1e-2, on every entry
    # The same float32 arithmetic on both sides, in a different order: 1e-6 of values ~0.1.
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-6),
                 unreplicate(new.params), expected)
    assert float(unreplicate(metrics["grad_norm"])) == pytest.approx(
        float(optax.tree.norm(grads)), rel=1e-5)  # reported before clipping
