"""The jitted, pmapped train and eval steps.

Each device holds a full replica of the state and a slice of the global batch; gradients
and losses are averaged over every device of every process with `lax.pmean`.
Legend: A micro-batches (gradient accumulation), B per-device batch, T time, V vocab.
"""

from collections.abc import Callable
from concurrent.futures import Executor

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gpt_jax.state import TrainState

AXIS = "devices"  # the pmap axis; replicate() must use the same name or the step compiles twice


def _per_device() -> NamedSharding:
    """Row d on local device d: how the pmapped steps expect their inputs laid out."""
    return NamedSharding(Mesh(np.array(jax.local_devices()), (AXIS,)), PartitionSpec(AXIS))


def shard(x_Dx: np.ndarray) -> jax.Array:
    """Puts row d of x on local device d."""
    return jax.device_put(x_Dx, _per_device())


def replicate(tree):
    """One copy of every leaf on each local device, along the pmap axis."""
    n = jax.local_device_count()
    return jax.tree.map(lambda x: shard(np.broadcast_to(np.asarray(x), (n, *np.shape(x)))), tree)


def replicated_shapes(tree):
    """What replicate(tree) would hold, as shapes, dtypes and shardings: a step can be compiled
    for a state that does not exist yet."""
    n, sharding = jax.local_device_count(), _per_device()
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct((n, *x.shape), x.dtype,
                                                       sharding=sharding), tree)


def compile_ahead(pool: Executor, step: Callable, *args,
                  compiler_options: dict | None = None) -> Callable[[], Callable]:
    """Traces `step` for arguments like `args` (arrays or shapes) here, then compiles it on
    `pool` (with `compiler_options`, xla_options.py); returns a function that waits for it and
    gives the compiled step, callable as `step` is. XLA releases the GIL while it compiles, so
    the host builds the state meanwhile. Tracing stays on this thread: flax's module machinery
    is not safe to run on two at once. Across processes a pmap cannot be lowered for shapes
    alone; there the step compiles at its first call, as usual, with XLA's default options."""
    if jax.process_count() > 1:
        return lambda: step
    lowered = step.lower(*args)
    return pool.submit(lowered.compile, compiler_options=compiler_options).result


def unreplicate(tree):
    """The first local replica of every leaf, as host arrays."""
    return jax.tree.map(lambda x: np.asarray(x.addressable_shards[0].data)[0], tree)


def cross_entropy(logits_BxTxV: jax.Array, targets_BxT: jax.Array) -> jax.Array:
    """Mean next-token loss, computed in float32 whatever the compute dtype."""
    return optax.softmax_cross_entropy_with_integer_labels(
        logits_BxTxV.astype(jnp.float32), targets_BxT).mean()


def uses_dropout(model: nn.Module) -> bool:
    return getattr(getattr(model, "config", None), "dropout", 0.0) > 0


def apply_model(model: nn.Module, params, inputs: tuple, keys_B: jax.Array | None = None):
    """The model's logits for a batch of inputs (arrays of B rows); given one dropout key per
    example, in training mode, each example's dropout masks drawn from its own key."""
    if keys_B is None or not uses_dropout(model):
        return model.apply({"params": params}, *inputs, train=keys_B is not None)

    def one_example(key, *example):
        return model.apply({"params": params}, *(x[None] for x in example), train=True,
                           rngs={"dropout": key})[0]
    return jax.vmap(one_example)(keys_B, *inputs)


def make_loss_fn(model: nn.Module) -> Callable:
    """loss(params, x_BxT, y_BxT, keys_B=None): the mean next-token loss of a language model;
    given dropout keys, in training mode."""
    def loss_fn(params, x_BxT, y_BxT, keys_B=None):
        return cross_entropy(apply_model(model, params, (x_BxT,), keys_B), y_BxT)
    return loss_fn


def seed_key_data(seed: int) -> np.ndarray:
    """The run's seed as the train step takes it: the raw data of jax.random.key(seed), an
    argument rather than a constant, so that runs that differ only in their seed run (and
    find in the compilation cache) one program."""
    return np.asarray(jax.random.key_data(jax.random.key(seed)))


def example_keys(seed_data: jax.Array, step: jax.Array, rows: jax.Array) -> jax.Array:
    """The dropout key of each example: from (seed, step, its row in the global batch), so
    the masks, like the batches, do not depend on which device or micro-batch computes it,
    and a resumed run draws the very same ones (no RNG state to checkpoint). `seed_data`:
    seed_key_data(seed)."""
    step_key = jax.random.fold_in(jax.random.wrap_key_data(seed_data), step)
    return jax.vmap(lambda row: jax.random.fold_in(step_key, row))(rows.reshape(-1)).reshape(
        rows.shape)


def _train_step(loss_fn: Callable, optimizer: optax.GradientTransformation) -> Callable:
    """One update on one device's rows: (state, batch_A, rows_AxB, seed_data) -> (state,
    metrics), where every leaf of `batch_A` has a leading axis of micro-batches, `loss_fn(params,
    batch, keys_B)` is the task's, rows are the examples' indices in the global batch and
    seed_data is seed_key_data(seed)."""
    grad_fn = jax.value_and_grad(loss_fn)

    def train_step(state: TrainState, batch_A, rows_AxB, seed_data):
        keys_AxB = example_keys(seed_data, state.step, rows_AxB)
        num_micro = rows_AxB.shape[0]
        if num_micro == 1:
            loss, grads = grad_fn(state.params, jax.tree.map(lambda a: a[0], batch_A),
                                  keys_AxB[0])
        else:
            def accumulate(carry, micro):
                loss, grads = grad_fn(state.params, *micro)
                return jax.tree.map(jnp.add, carry, (loss, grads)), None

            zeros = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, state.params))
            (loss, grads), _ = jax.lax.scan(accumulate, zeros, (batch_A, keys_AxB))
            loss, grads = jax.tree.map(lambda g: g / num_micro, (loss, grads))
        loss, grads = jax.lax.pmean((loss, grads), AXIS)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        new_state = state.replace(step=state.step + 1,
                                  params=optax.apply_updates(state.params, updates),
                                  opt_state=opt_state)
        return new_state, {"loss": loss, "grad_norm": optax.tree.norm(grads)}

    return train_step


def make_train_step(model: nn.Module, optimizer: optax.GradientTransformation,
                    seed: int) -> Callable:
    """A language model's step: (state, x_DxAxBxT, y_DxAxBxT, rows_DxAxB) -> (state, metrics);
    D = local devices, state donated."""
    loss_fn = make_loss_fn(model)
    step = _train_step(lambda params, batch, keys: loss_fn(params, *batch, keys), optimizer)
    pmapped = jax.pmap(lambda state, x, y, rows, seed_data: step(state, (x, y), rows, seed_data),
                       axis_name=AXIS, in_axes=(0, 0, 0, 0, None), donate_argnums=(0,))
    seed_data = seed_key_data(seed)
    return lambda state, x, y, rows: pmapped(state, x, y, rows, seed_data)


def make_train_chunk(model: nn.Module, optimizer: optax.GradientTransformation,
                     task) -> Callable:
    """(state, data, inputs_DxK, n, stop_Dx2, rows_DxAxB, seed_data) -> (state,
    metrics_DxKx2, stop_Dx2): n <= K steps in one call; step k's batch is `task.batch(data,
    inputs[k])` (text: the windows at its start offsets in the token stream kept on the
    device); seed_data is seed_key_data(train.seed), the same program for every seed.

    The data stays on the device and the loop runs there, so the host pays the cost of a
    dispatch, a transfer and a metrics fetch once per K steps instead of every step.
    metrics[k] = (loss, grad_norm) of the k-th step; rows past n are NaN. `stop` carries each
    process's stop request, (signal number or 0, -steps per call it wishes), out as the
    largest over every device of every process, so all processes learn of a signal, and of
    the fewest steps any wishes, in the same chunk.
    """
    train_step = _train_step(task.loss_fn(model), optimizer)

    def chunk(state: TrainState, data, inputs_K, n, stop, rows_AxB, seed_data):
        def one_step(k, carry):
            state, metrics_Kx2 = carry
            batch_A = task.batch(data, jax.tree.map(lambda a: a[k], inputs_K))
            state, m = train_step(state, batch_A, rows_AxB, seed_data)
            return state, metrics_Kx2.at[k].set(jnp.stack([m["loss"], m["grad_norm"]]))

        K = jax.tree.leaves(inputs_K)[0].shape[0]
        metrics_Kx2 = jnp.full((K, 2), jnp.nan, jnp.float32)
        state, metrics_Kx2 = jax.lax.fori_loop(0, n, one_step, (state, metrics_Kx2))
        # Nothing else orders the stop's collective after the loop's gradient means, and
        # XLA:CPU may start it first: one process's pmax then met another's pmean, and Gloo
        # aborted the process (a size mismatch). Reading the loop's step makes stop wait for
        # the loop (an optimization_barrier did not, measured).
        stop = jnp.where(state.step >= 0, stop, 1)
        return state, metrics_Kx2, jax.lax.pmax(stop, AXIS)

    return jax.pmap(chunk, axis_name=AXIS, in_axes=(0, 0, 0, None, 0, 0, None),
                    donate_argnums=(0,))


def mean_loss(loss_fn: Callable) -> Callable:
    """(params, *batches_NxB) -> the loss averaged over N batches, dropout off."""
    def mean(params, *batches):
        def one(total, batch):
            return total + loss_fn(params, *batch), None  # no dropout keys: dropout off

        total, _ = jax.lax.scan(one, jnp.zeros((), jnp.float32), batches)
        return total / batches[0].shape[0]
    return mean


def make_eval_step(model: nn.Module) -> Callable:
    """(params, x_DxNxBxT, y_DxNxBxT) -> a language model's mean loss over N batches on every
    device, dropout off."""
    mean = mean_loss(make_loss_fn(model))
    return jax.pmap(lambda params, x, y: jax.lax.pmean(mean(params, x, y), AXIS), axis_name=AXIS)
