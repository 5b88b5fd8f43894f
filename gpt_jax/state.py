"""The training state (params, optimizer state, step count) and its construction."""

from collections.abc import Callable
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


def example_inputs(inputs) -> tuple[jax.ShapeDtypeStruct, ...]:
    """A model's example inputs: given as shapes, or as a block size (one row of that many
    token ids)."""
    if isinstance(inputs, int):
        return (jax.ShapeDtypeStruct((1, inputs), jnp.int32),)
    return tuple(inputs)


def _init(model: nn.Module, optimizer: optax.GradientTransformation,
          inputs) -> Callable[[jax.Array], TrainState]:
    """key -> a fresh state: flax's init (a forward pass on a dummy batch), then the optimizer's."""
    dummies = [jnp.zeros(x.shape, x.dtype) for x in example_inputs(inputs)]

    def init(key):
        params = model.init(key, *dummies)["params"]
        return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                          opt_state=optimizer.init(params))

    return init


def init_state(model: nn.Module, optimizer: optax.GradientTransformation, seed: int,
               inputs) -> TrainState:
    """Fresh parameters from `seed`; the same on every device layout. Jitted: the forward pass
    op by op takes longer than compiling it. It runs once, so on a CPU XLA compiles it without
    LLVM's optimizations: 0.7 of its 2 s to compile, for a few milliseconds more to run (and
    random draws that may differ from an optimized build's in the last bit)."""
    cpu = jax.default_backend() == "cpu"
    init = jax.jit(_init(model, optimizer, inputs),
                   compiler_options={"xla_backend_optimization_level": 0} if cpu else None)
    return init(jax.random.key(seed))


def abstract_state(model: nn.Module, optimizer: optax.GradientTransformation,
                   inputs) -> TrainState:
    """Shapes and dtypes of the state, without computing it: the target a restore must match."""
    return jax.eval_shape(_init(model, optimizer, inputs), jax.random.key(0))


def param_shapes(model: nn.Module, inputs):
    """Shapes and dtypes of the params alone, never allocated: even a table too large for any
    memory has one."""
    return jax.eval_shape(model.init, jax.random.key(0), *example_inputs(inputs))["params"]


def count_params(params) -> int:
    return sum(int(p.size) for p in jax.tree.leaves(params))
