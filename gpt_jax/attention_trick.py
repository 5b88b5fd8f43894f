"""The mathematical trick behind self-attention: a causal running average, three ways.

Each function maps x (B, T, C) to xbow (B, T, C) with xbow[b, t] = mean(x[b, :t+1]).
All three give the same numbers; the third is the form attention generalizes, where the
uniform weights become data-dependent affinities.
"""

import jax
import jax.numpy as jnp


def running_average_loop(x_BxTxC: jax.Array) -> jax.Array:
    """Version 1: an explicit loop over time, averaging every prefix."""
    T = x_BxTxC.shape[1]
    return jnp.stack([x_BxTxC[:, : t + 1].mean(axis=1) for t in range(T)], axis=1)


def running_average_matmul(x_BxTxC: jax.Array) -> jax.Array:
    """Version 2: one matmul with a lower-triangular matrix whose rows sum to one."""
    T = x_BxTxC.shape[1]
    wei_TxT = jnp.tril(jnp.ones((T, T)))
    wei_TxT = wei_TxT / wei_TxT.sum(axis=1, keepdims=True)
    return wei_TxT @ x_BxTxC


def running_average_softmax(x_BxTxC: jax.Array) -> jax.Array:
    """Version 3: softmax over zero affinities with the future masked to -inf.

    exp(-inf) = 0, so future tokens get exactly zero weight and the rest share it equally.
    """
    T = x_BxTxC.shape[1]
    affinities_TxT = jnp.zeros((T, T))
    affinities_TxT = jnp.where(jnp.tril(jnp.ones((T, T), bool)), affinities_TxT, -jnp.inf)
    return jax.nn.softmax(affinities_TxT, axis=-1) @ x_BxTxC


USAGE = "usage: python -m gpt_jax.attention_trick"


def _main(argv: list[str]) -> None:
    """Shows the three versions on a small x (1, 4, 2): the same running averages."""
    import numpy as np

    from gpt_jax.errors import UserError

    if argv[1:] in (["--help"], ["-h"]):
        print(f"{USAGE}\n\n{__doc__.strip()}")
        return
    if argv[1:]:
        raise UserError(f"{argv[1]}: this command takes no arguments; {USAGE}")
    x_BxTxC = jnp.arange(8.0).reshape(1, 4, 2)
    np.set_printoptions(precision=3, suppress=True)
    print(f"x[0] (T = 4 positions, C = 2 channels):\n{np.asarray(x_BxTxC[0])}")
    versions = {"loop": running_average_loop, "matmul": running_average_matmul,
                "softmax": running_average_softmax}
    results = {name: np.asarray(f(x_BxTxC)[0]) for name, f in versions.items()}
    for name, xbow_TxC in results.items():
        print(f"\nxbow[0], {name} version (row t: the mean of rows 0..t):\n{xbow_TxC}")
    worst = max(float(np.abs(r - results["loop"]).max()) for r in results.values())
    print(f"\nlargest difference between the versions: {worst:.1e}")


if __name__ == "__main__":
    import sys

    from gpt_jax import cli

    cli.run(lambda: _main(sys.argv))
