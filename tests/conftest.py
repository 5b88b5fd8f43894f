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
import numpy as np
import pytest
from tiny_config import tiny_config  # noqa: F401  (tests import it from here)

from gpt_jax.dataset import default_corpus_path
from gpt_jax.tokenizer import CharTokenizer

REPO = Path(__file__).resolve().parents[1]

# Subprocesses compile with LLVM's -O0: compiling is most of a subprocess test's time (a tiny
# model runs a few steps), and -O0 compiles about twice as fast. They test behaviour (signals,
# files, resumes, layouts compared with each other), not speed. This process keeps XLA's
# default, so the in-process tests of the math (its exact equalities) run the code users run:
# XLA reads XLA_FLAGS once, when the backend starts, which is here, before the flag is set.
jax.devices()
SUBPROCESS_XLA_FLAGS = "--xla_backend_optimization_level=0"
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {SUBPROCESS_XLA_FLAGS}".strip()


def devices_env(n: int) -> dict:
    """The environment of a subprocess with n CPU devices (XLA_FLAGS, the flag above kept)."""
    return {"XLA_FLAGS": f"{os.environ['XLA_FLAGS']} --xla_force_host_platform_device_count={n}"}


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
