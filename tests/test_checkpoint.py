"""Checkpoints: restore what was saved, refuse the wrong model loudly, survive damage."""

import shutil

import pytest

from conftest import tiny_config
from gpt_jax.checkpoint import Checkpoints
from gpt_jax.errors import UserError
from gpt_jax.models import build_model
from gpt_jax.optim import make_optimizer
from gpt_jax.restore import load_run
from gpt_jax.state import abstract_state, init_state
from gpt_jax.trainer import train_and_evaluate


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
