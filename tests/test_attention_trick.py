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


def test_the_command_shows_the_three_versions_agree():
    """`python -m gpt_jax.attention_trick` did nothing, and took any argument."""
    from conftest import run_python

    result = run_python(["-m", "gpt_jax.attention_trick"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("xbow[0]") == 3
    assert result.stdout.endswith("largest difference between the versions: 0.0e+00\n")
    refused = run_python(["-m", "gpt_jax.attention_trick", "--bogus"])
    assert refused.returncode == 2 and refused.stderr == (
        "error: --bogus: this command takes no arguments; usage: python -m "
        "gpt_jax.attention_trick\n")
