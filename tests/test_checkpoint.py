"""Checkpoints: exact resume after a real SIGKILL, and refusing the wrong model loudly."""

import shutil

import numpy as np
import pytest

from conftest import REPO, run_python, tiny_config
from gpt_jax.checkpoint import Checkpoints
from gpt_jax.errors import UserError
from gpt_jax.faults import ENV
from gpt_jax.models import build_model
from gpt_jax.optim import make_optimizer
from gpt_jax.restore import load_run
from gpt_jax.state import abstract_state, init_state
from gpt_jax.trainer import train_and_evaluate

TINY = (REPO / "tests" / "tiny_config.py").as_posix()
ARGS = ["--config.train.num_steps=40", "--config.train.checkpoint_every=10",
        "--config.train.eval_interval=20", "--config.model.dropout=0.1"]


def _train(workdir, *extra, kill_at=None):
    env = {ENV: kill_at} if kill_at else {}
    return run_python(["train.py", f"--config={TINY}", f"--workdir={workdir}", *ARGS, *extra],
                      env=env)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """40 steps without interruption: the reference every resumed run must equal, bit for bit."""
    workdir = tmp_path_factory.mktemp("straight")
    result = _train(workdir)
    assert result.returncode == 0, result.stderr
    return load_run(workdir)


def _assert_identical(run_a, run_b):
    flat_a, flat_b = (dict(_leaves(r.state)) for r in (run_a, run_b))
    assert flat_a.keys() == flat_b.keys()
    for key in flat_a:
        np.testing.assert_array_equal(flat_a[key], flat_b[key], err_msg=key)


def _leaves(tree):
    import jax
    return [(jax.tree_util.keystr(k), np.asarray(v))
            for k, v in jax.tree_util.tree_flatten_with_path(tree)[0]]


# Killed after step 25, the save of step 20 may still have been in flight: then the run
# resumes from 10. When the save of 30 has started, that of 20 has finished (orbax finishes
# one save before starting the next), and 30 itself is lost.
@pytest.mark.parametrize("kill_at, resumed_from", [("step:25", (10, 20)), ("save:30", (20,))],
                         ids=["between_saves", "during_async_save"])
def test_sigkill_then_resume_is_bit_exact(tmp_path, straight, kill_at, resumed_from):
    killed = _train(tmp_path, kill_at=kill_at)
    assert killed.returncode == -9  # a real SIGKILL, not an exception
    resumed = _train(tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert any(f"resumed from the checkpoint at step {s}\n" in resumed.stdout
               for s in resumed_from), resumed.stdout
    run = load_run(tmp_path)
    assert run.step == 40
    _assert_identical(run, straight)


def test_restore_names_the_first_mismatched_leaf(tmp_path):
    config = tiny_config()
    model, optimizer = build_model(config.model, 65), make_optimizer(config.train)
    checkpoints = Checkpoints(tmp_path)
    checkpoints.save(5, init_state(model, optimizer, 0, 8))
    checkpoints.wait()
    wider = build_model(tiny_config(n_embd=32).model, 65)
    with pytest.raises(UserError, match=r"does not match .*: .* is float32\[64\] in the "
                                        r"checkpoint, float32\[128\] here"):
        checkpoints.restore(5, abstract_state(wider, optimizer, 8))
    deeper = build_model(tiny_config(n_layer=3).model, 65)
    with pytest.raises(UserError, match="params/block_2/.* is missing from the checkpoint"):
        checkpoints.restore(5, abstract_state(deeper, optimizer, 8))
    checkpoints.close()


def test_resuming_a_different_model_is_refused_and_changed_steps_allowed(tmp_path, capsys):
    config = tiny_config()
    config.train.num_steps = 10
    train_and_evaluate(config, tmp_path)
    other = tiny_config(n_layer=3)
    other.train.num_steps = 20
    with pytest.raises(UserError, match=r"different model \(model.n_layer: 2 → 3\)"):
        train_and_evaluate(other, tmp_path)
    config.train.num_steps, config.train.learning_rate = 20, 2e-3
    record = train_and_evaluate(config, tmp_path)
    out = capsys.readouterr().out
    assert "train.num_steps: 10 → 20" in out and "train.learning_rate: 0.001 → 0.002" in out
    assert record["step"] == 20


def test_a_run_copied_elsewhere_still_samples(tmp_path):
    config = tiny_config()
    config.train.num_steps = 10
    train_and_evaluate(config, tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert load_run(tmp_path / "b").step == 10
