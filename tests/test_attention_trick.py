import jax
import numpy as np

from gpt_jax.attention_trick import (
    running_average_loop,
    running_average_matmul,
    running_average_softmax,
)


def test_three_forms_agree():
    x = jax.random.normal(jax.random.key(1337), (4, 8, 2))
    loop = running_average_loop(x)
    np.testing.assert_allclose(running_average_matmul(x), loop, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(running_average_softmax(x), loop, rtol=1e-6, atol=1e-6)


def test_each_position_averages_its_prefix():
    x = jax.random.normal(jax.random.key(0), (2, 5, 3))
    out = running_average_softmax(x)
    np.testing.assert_allclose(out[:, 0], x[:, 0], rtol=1e-6)
    np.testing.assert_allclose(out[:, 3], x[:, :4].mean(axis=1), rtol=1e-6, atol=1e-6)
