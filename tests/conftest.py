"""Shared fixtures: tiny configs and compiled pieces reused across tests (compiling dominates)."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

# Compiling dominates these tests, and many subprocesses compile the same tiny programs: share
# them through XLA's persistent cache (set before jax is imported; subprocesses inherit it).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      str(Path(tempfile.gettempdir()) / "gpt_jax_tests_xla_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import jax  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np
import pytest

from gpt_jax.config import base_config
from gpt_jax.dataset import default_corpus_path
from gpt_jax.tokenizer import CharTokenizer

REPO = Path(__file__).resolve().parents[1]


def tiny_config(**model) -> ml_collections.ConfigDict:
    """A GPT small enough to compile in about a second, with every switch on by default."""
    config = base_config()
    config.model.update({**dict(block_size=8, n_embd=16, n_head=2, n_layer=2), **model})
    config.train.update(dict(num_steps=20, batch_size=8, eval_interval=10, eval_iters=2,
                             log_interval=10, checkpoint_every=10))
    config.sample.max_new_tokens = 0
    return config


@pytest.fixture(scope="session")
def shakespeare() -> str:
    return default_corpus_path().read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def tokenizer(shakespeare) -> CharTokenizer:
    return CharTokenizer.from_text(shakespeare)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def run_python(args: list[str], env: dict | None = None, timeout: float = 300,
               cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Runs `python ARGS` in a fresh interpreter (own jax, own device count)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def assert_trees_close(a, b, rtol=1e-5, atol=1e-6) -> None:
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)
