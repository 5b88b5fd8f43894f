"""The fused dropout: JAX's own Threefry hash, Bernoulli masks, the scaling of survivors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend.random import threefry_2x32

from gpt_jax.models.dropout import Dropout
from gpt_jax.models.fused_dropout import keep_mask, threefry2x32


def test_threefry_equals_jax_threefry():
    key = jnp.array([0x13198A2E, 0x03707344], jnp.uint32)
    count = jax.random.bits(jax.random.key(0), (2, 500), jnp.uint32)
    # jax's function hashes the first half of its counts paired with the second half.
    expected = threefry_2x32(key, count.reshape(-1)).reshape(2, 500)
    np.testing.assert_array_equal(np.stack(threefry2x32(key, count[0], count[1])), expected)


@pytest.mark.parametrize("rate", [0.1, 0.2, 0.5])
def test_masks_keep_each_element_with_probability_one_minus_rate(rate):
    keep = np.asarray(keep_mask(jax.random.key(1), (256, 1024), rate))
    n = keep.size
    sigma = np.sqrt(rate * (1 - rate) / n)
    assert abs(keep.mean() - (1 - rate)) < 5 * sigma
    # Neighbours along either axis are independent: both kept with probability (1 - rate)^2.
    for both in (keep[:, 1:] & keep[:, :-1], keep[1:] & keep[:-1]):
        p = (1 - rate) ** 2
        assert abs(both.mean() - p) < 5 * np.sqrt(p * (1 - p) / both.size)
    # Every row and every column sees dropout at the same rate: no stripes.
    for axis in (0, 1):
        means = keep.mean(axis=axis)
        spread = np.sqrt(rate * (1 - rate) / keep.shape[axis])
        assert np.abs(means - (1 - rate)).max() < 6 * spread


def test_masks_depend_on_the_key_only():
    a = keep_mask(jax.random.key(1), (64, 64), 0.2)
    np.testing.assert_array_equal(a, keep_mask(jax.random.key(1), (64, 64), 0.2))
    b = keep_mask(jax.random.key(2), (64, 64), 0.2)
    agree = float((a == b).mean())
    assert abs(agree - (0.8**2 + 0.2**2)) < 0.03  # independent masks agree by chance only


@pytest.mark.parametrize("fused", [False, True], ids=["plain", "fused"])
def test_dropout_scales_survivors_and_is_identity_when_deterministic(fused):
    x = jnp.arange(1, 4097, dtype=jnp.float32).reshape(64, 64)
    layer = Dropout(0.25, fused)
    np.testing.assert_array_equal(layer.apply({}, x, deterministic=True), x)
    y = np.asarray(layer.apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(3)}))
    kept = y != 0
    np.testing.assert_allclose(y[kept], np.asarray(x)[kept] / 0.75, rtol=1e-6)
    assert 0.7 < kept.mean() < 0.8
