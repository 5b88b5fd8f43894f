"""Shared fixtures: tiny configs and compiled pieces reused across tests (compiling dominates)."""

import atexit
import contextlib
import functools
import os
import random
import socket
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
from fork_server import ForkServer, forkable
from tiny_config import tiny_config  # noqa: F401  (tests import it from here)

from gpt_jax.dataset import default_corpus_path
from gpt_jax.tokenizer import CharTokenizer

REPO = Path(__file__).resolve().parents[1]

# Every test compiles with LLVM's -O0 and XLA:CPU's older elemental emitters in place of its
# fusion emitters (subprocesses inherit XLA_FLAGS): compiling is most of this suite's time
# (~2,000 op-by-op compiles here, a tiny model trained for a few steps in a subprocess). -O0
# compiles 20% to 2x faster; the fusion emitters off take the suite from ~575 s to ~475 s with
# a cold cache on 2 cores. What the tests check (exact equalities, signals, files, resumes,
# layouts compared with each other) holds for the code XLA emits either way: its own passes
# (fusion, simplification) still run. One exception: test_prepared_data.py compares two
# programs that -O0 rounds apart by an ulp, and compiles them as a user's run does. Set before
# jax's backend starts, which reads it.
FAST_COMPILE_XLA_FLAGS = (
    "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false")
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE_XLA_FLAGS}".strip()
jax.devices()


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


def overridden(defaults: list[str], *extra: str) -> list[str]:
    """A test's default flags with `extra` in place of those it names again: a command refuses
    an override given twice."""
    names = {arg.split("=")[0] for arg in extra}
    return [arg for arg in defaults if arg.split("=")[0] not in names] + list(extra)


def exec_with(*settings: str) -> list[str]:
    """The start of a command line that sets `settings` (exec_with.py: a signal's action, a
    resource limit) before it runs the rest, instead of a preexec_fn."""
    return [sys.executable, str(REPO / "tests" / "exec_with.py"), *settings, "--"]


def free_port() -> int:
    """A free port below Linux's ephemeral range (32768 on): one the kernel hands out could be
    taken, before the coordinator binds it, by any connection's local end."""
    for _ in range(1000):
        port = random.SystemRandom().randrange(20000, 32768)  # not pytest-randomly's seed
        with socket.socket() as s, contextlib.suppress(OSError):
            s.bind(("127.0.0.1", port))
            return port
    raise AssertionError("no free port in 20000-32767")


def run_python(args: list[str], env: dict | None = None, timeout: float = 300,
               cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Runs `python ARGS` in a process of its own (own jax, own device count): forked from this
    worker's fork server, which has imported jax and the rest once, where it can be; else a
    fresh interpreter. GPT_JAX_TESTS_FORK=0 runs every one in a fresh interpreter."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    if os.environ.get("GPT_JAX_TESTS_FORK", "1") == "0" or not forkable(
            args, full_env, _fork_server().env):
        return subprocess.run([sys.executable, *args], cwd=cwd, env=full_env,
                              capture_output=True, text=True, timeout=timeout)
    with tempfile.TemporaryDirectory() as folder:
        out, err = Path(folder) / "stdout", Path(folder) / "stderr"
        code = _fork_server().run(args, full_env, cwd, timeout, out, err)
        return subprocess.CompletedProcess([sys.executable, *args], code,
                                           out.read_text(), err.read_text())


@functools.cache
def _fork_server() -> ForkServer:
    server = ForkServer(REPO)
    atexit.register(server.close)
    return server


def assert_causal(grads_TxBxTxC, sees_the_past: bool = True) -> None:
    """grads_TxBxTxC[t] = d out_t / d input (every t at once, jax.jacrev): exactly zero toward
    every later position s > t, and (unless `sees_the_past` is False) non-zero toward every
    s <= t in every row."""
    g_TxBxT = np.abs(np.asarray(grads_TxBxTxC)).sum(-1)
    for t in range(g_TxBxT.shape[0]):
        assert np.all(g_TxBxT[t][:, t + 1:] == 0.0), f"position {t} sees the future"
        if sees_the_past:
            assert np.all(g_TxBxT[t][:, : t + 1] > 0), f"position {t} ignores its past"


def assert_trees_close(a, b, rtol=1e-5, atol=1e-6) -> None:
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)
