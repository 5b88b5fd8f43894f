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


def compile_ahead(pool: Executor, step: Callable, *args) -> Callable[[], Callable]:
    """Starts compiling `step` on `pool` for arguments like `args` (arrays or shapes); returns a
    function that waits for it and gives the compiled step, callable as `step` is. XLA releases
    the GIL while it compiles, so the host builds the state meanwhile. Across processes a pmap
    cannot be lowered for shapes alone; there the step compiles at its first call, as usual."""
    if jax.process_count() > 1:
        return lambda: step
    return pool.submit(lambda: step.lower(*args).compile()).result


def unreplicate(tree):
    """The first local replica of every leaf, as host arrays."""
    return jax.tree.map(lambda x: np.asarray(x.addressable_shards[0].data)[0], tree)


def cross_entropy(logits_BxTxV: jax.Array, targets_BxT: jax.Array) -> jax.Array:
    """Mean next-token loss, computed in float32 whatever the compute dtype."""
    return optax.softmax_cross_entropy_with_integer_labels(
        logits_BxTxV.astype(jnp.float32), targets_BxT).mean()


def uses_dropout(model: nn.Module) -> bool:
    return getattr(getattr(model, "config", None), "dropout", 0.0) > 0


def make_loss_fn(model: nn.Module) -> Callable:
    """loss(params, x_BxT, y_BxT, keys_B=None): the mean next-token loss; given one dropout key
    per example, in training mode, each example's masks drawn from its own key."""
    def loss_fn(params, x_BxT, y_BxT, keys_B=None):
        if keys_B is None or not uses_dropout(model):
            logits_BxTxV = model.apply({"params": params}, x_BxT, train=keys_B is not None)
        else:
            def one_example(x_T, key):
                return model.apply({"params": params}, x_T[None], train=True,
                                   rngs={"dropout": key})[0]
            logits_BxTxV = jax.vmap(one_example)(x_BxT, keys_B)
        return cross_entropy(logits_BxTxV, y_BxT)
    return loss_fn


def example_keys(seed: int, step: jax.Array, rows: jax.Array) -> jax.Array:
    """The dropout key of each example: from (seed, step, its row in the global batch), so
    the masks, like the batches, do not depend on which device or micro-batch computes it,
    and a resumed run draws the very same ones (no RNG state to checkpoint)."""
    step_key = jax.random.fold_in(jax.random.key(seed), step)
    return jax.vmap(lambda row: jax.random.fold_in(step_key, row))(rows.reshape(-1)).reshape(
        rows.shape)


def _train_step(model: nn.Module, optimizer: optax.GradientTransformation,
                seed: int) -> Callable:
    """One update on one device's rows: (state, x_AxBxT, y_AxBxT, rows_AxB) -> (state,
    metrics), where rows are the examples' indices in the global batch."""
    grad_fn = jax.value_and_grad(make_loss_fn(model))

    def train_step(state: TrainState, x_AxBxT, y_AxBxT, rows_AxB):
        keys_AxB = example_keys(seed, state.step, rows_AxB)
        num_micro = x_AxBxT.shape[0]
        if num_micro == 1:
            loss, grads = grad_fn(state.params, x_AxBxT[0], y_AxBxT[0], keys_AxB[0])
        else:
            def accumulate(carry, micro):
                loss, grads = grad_fn(state.params, *micro)
                return jax.tree.map(jnp.add, carry, (loss, grads)), None

            zeros = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, state.params))
            (loss, grads), _ = jax.lax.scan(accumulate, zeros, (x_AxBxT, y_AxBxT, keys_AxB))
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
    """(state, x_DxAxBxT, y_DxAxBxT, rows_DxAxB) -> (state, metrics); D = local devices, state
    donated."""
    return jax.pmap(_train_step(model, optimizer, seed), axis_name=AXIS, donate_argnums=(0,))


def make_train_chunk(model: nn.Module, optimizer: optax.GradientTransformation, seed: int,
                     block_size: int) -> Callable:
    """(state, tokens_DxN, starts_DxKxAxB, n, stop_D, rows_DxAxB) -> (state, metrics_DxKx2,
    stop_D): n <= K steps in one call, each on the windows of `block_size + 1` tokens at its
    batch's start offsets.

    The token stream stays on the device and the loop runs there, so the host pays the cost
    of a dispatch, a transfer and a metrics fetch once per K steps instead of every step.
    metrics[k] = (loss, grad_norm) of the k-th step; rows past n are NaN. `stop` carries each
    process's stop request (a signal number, 0 for none) out as the largest over every
    device of every process, so all processes learn of a signal in the same chunk.
    """
    train_step = _train_step(model, optimizer, seed)
    offsets = jnp.arange(block_size + 1)

    def chunk(state: TrainState, tokens_N, starts_KxAxB, n, stop, rows_AxB):
        def one_step(k, carry):
            state, metrics_Kx2 = carry
            window_AxBxT1 = tokens_N[starts_KxAxB[k][..., None] + offsets]
            state, m = train_step(state, window_AxBxT1[..., :-1], window_AxBxT1[..., 1:],
                                  rows_AxB)
            return state, metrics_Kx2.at[k].set(jnp.stack([m["loss"], m["grad_norm"]]))

        metrics_Kx2 = jnp.full((starts_KxAxB.shape[0], 2), jnp.nan, jnp.float32)
        state, metrics_Kx2 = jax.lax.fori_loop(0, n, one_step, (state, metrics_Kx2))
        return state, metrics_Kx2, jax.lax.pmax(stop, AXIS)

    return jax.pmap(chunk, axis_name=AXIS, in_axes=(0, 0, 0, None, 0, 0), donate_argnums=(0,))


def make_eval_step(model: nn.Module) -> Callable:
    """(params, x_DxNxBxT, y_DxNxBxT) -> mean loss over N batches on every device, dropout off."""
    loss_fn = make_loss_fn(model)

    def eval_step(params, x_NxBxT, y_NxBxT):
        def one(total, xy):
            return total + loss_fn(params, *xy), None  # no dropout keys: dropout off

        total, _ = jax.lax.scan(one, jnp.zeros((), jnp.float32), (x_NxBxT, y_NxBxT))
        return jax.lax.pmean(total / x_NxBxT.shape[0], AXIS)

    return jax.pmap(eval_step, axis_name=AXIS)
