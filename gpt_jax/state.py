"""The training state (params, optimizer state, step count) and its construction."""

from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
    """Everything a checkpoint must hold: batches and dropout masks are derived from
    (seed, step), so `step` doubles as the data and RNG position."""

    step: jax.Array  # () int32: optimizer updates done so far
    params: Any
    opt_state: Any


def init_state(model: nn.Module, optimizer: optax.GradientTransformation, seed: int,
               block_size: int) -> TrainState:
    """Fresh parameters from `seed`; the same on every device layout. Jitted: flax's init runs
    a forward pass, which op by op takes longer than compiling it."""
    idx_1xT = jnp.zeros((1, block_size), jnp.int32)

    @jax.jit
    def init(key):
        params = model.init(key, idx_1xT)["params"]
        return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                          opt_state=optimizer.init(params))

    return init(jax.random.key(seed))


def abstract_state(model: nn.Module, optimizer: optax.GradientTransformation,
                   block_size: int) -> TrainState:
    """Shapes and dtypes of the state, without computing it: the target a restore must match."""
    return jax.eval_shape(lambda: init_state(model, optimizer, 0, block_size))


def param_shapes(model: nn.Module, block_size: int):
    """Shapes and dtypes of the params alone, never allocated: even a table too large for any
    memory has one."""
    idx_1xT = jax.ShapeDtypeStruct((1, block_size), jnp.int32)
    return jax.eval_shape(model.init, jax.random.key(0), idx_1xT)["params"]


def count_params(params) -> int:
    return sum(int(p.size) for p in jax.tree.leaves(params))
