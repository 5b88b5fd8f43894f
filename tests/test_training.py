import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import REPO, run_python, tiny_config
from gpt_jax.config import apply_overrides, load_config_file
from gpt_jax.models import build_model
from gpt_jax.optim import decay_mask, learning_rate_schedule, make_optimizer
from gpt_jax.state import init_state
from gpt_jax.steps import make_train_step, replicate, shard, unreplicate
from gpt_jax.trainer import train_and_evaluate


def test_bigram_learns_below_2_6(tmp_path):
    config = load_config_file(str(REPO / "configs/bigram.py"))
    apply_overrides(config, {"train.num_steps": 500, "train.eval_interval": 500,
                             "train.eval_iters": 20, "sample.max_new_tokens": 0})
    record = train_and_evaluate(config, tmp_path)
    assert record["step"] == 500 and record["val_loss"] < 2.6


def test_overfitting_one_batch_drives_loss_near_zero():
    config = tiny_config(n_embd=32, n_head=4, n_layer=2)
    config.train.learning_rate = 3e-3
    config.train.weight_decay = 0.0
    model = build_model(config.model, 65)
    optimizer = make_optimizer(config.train)
    state = replicate(init_state(model, optimizer, 0, 8))
    step = make_train_step(model, optimizer, seed=0)
    data = np.random.default_rng(0).integers(0, 65, size=(1, 1, 4, 9)).astype(np.int32)
    x, y = shard(data[..., :-1]), shard(data[..., 1:])
    rows = shard(np.arange(4, dtype=np.int32).reshape(1, 1, 4))
    first = None
    for _ in range(300):
        state, metrics = step(state, x, y, rows)
        first = first if first is not None else float(unreplicate(metrics["loss"]))
    assert first > 3.5 and float(unreplicate(metrics["loss"])) < 0.05


def test_weight_decay_only_on_matrices():
    """The QK-norm gains are vectors too, though the vmapped heads stack them as (D, H)."""
    model = build_model(tiny_config(qk_norm=True).model, 65)
    params = model.init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))["params"]
    mask = decay_mask(params)
    heads = params["block_0"]["sa"]["heads"]
    assert heads["query_norm"]["scale"].ndim == 2
    assert mask["block_0"]["sa"]["heads"]["query"]["kernel"]
    assert mask["token_embedding_table"]["embedding"]
    assert not mask["block_0"]["ln1"]["scale"] and not mask["lm_head"]["bias"]
    assert not mask["block_0"]["sa"]["heads"]["query_norm"]["scale"]
    assert not mask["block_0"]["sa"]["heads"]["key_norm"]["scale"]
    decayed = [jax.tree_util.keystr(path) for path, decays
               in jax.tree_util.tree_leaves_with_path(mask) if decays]
    assert all(path.endswith(("['kernel']", "['embedding']")) for path in decayed), decayed


def test_warmup_then_cosine():
    config = tiny_config()
    config.train.update(dict(lr_schedule="cosine", warmup_steps=10, num_steps=110,
                             learning_rate=1e-3, min_learning_rate=1e-4))
    lr = learning_rate_schedule(config.train)
    assert float(lr(0)) == 0.0 and math.isclose(float(lr(10)), 1e-3, rel_tol=1e-6)
    assert float(lr(5)) < float(lr(10)) and math.isclose(float(lr(110)), 1e-4, rel_tol=1e-4)


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_gradient_accumulation_equals_one_big_batch(dropout):
    """4 micro-batches of 8 give the same update as one batch of 32, dropout masks included
    (each example's come from its row in the global batch). With plain SGD at rate 1 the
    update is minus the gradient itself, so the params compare the gradients directly
    (Adam's first update, lr·g/|g|, would magnify float noise wherever g ≈ 0). Tolerance:
    the gradient is a float32 sum over 32 examples taken in another order, 1e-6 of values
    below 1."""
    model = build_model(tiny_config(dropout=dropout).model, 65)
    optimizer = optax.sgd(1.0)
    step = make_train_step(model, optimizer, seed=0)
    data = np.random.default_rng(1).integers(0, 65, size=(32, 9)).astype(np.int32)
    results = []
    for accum in (1, 4):
        state = replicate(init_state(model, optimizer, 0, 8))
        xs = data.reshape(1, accum, 32 // accum, 9)
        rows = shard(np.arange(32, dtype=np.int32).reshape(1, accum, 32 // accum))
        state, metrics = step(state, shard(xs[..., :-1]), shard(xs[..., 1:]), rows)
        results.append((float(unreplicate(metrics["loss"])),
                        float(unreplicate(metrics["grad_norm"])), unreplicate(state.params)))
    (loss1, norm1, params1), (loss4, norm4, params4) = results
    np.testing.assert_allclose(loss1, loss4, rtol=1e-6)
    np.testing.assert_allclose(norm1, norm4, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(params1), jax.tree.leaves(params4), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_each_step_draws_its_own_dropout_masks():
    """The same parameters and batch at steps 0 and 5: another step's masks, another loss;
    the same step's, the same loss (the keys come from (seed, step, row), no RNG state).
    Every run test compares runs with one another, which the same masks at every step would
    pass."""
    model = build_model(tiny_config(dropout=0.3).model, 65)
    optimizer = optax.sgd(0.0)
    step = make_train_step(model, optimizer, seed=0)
    data = np.random.default_rng(2).integers(0, 65, size=(1, 1, 8, 9)).astype(np.int32)
    x, y = data[..., :-1], data[..., 1:]
    rows = np.arange(8, dtype=np.int32).reshape(1, 1, 8)

    def loss_at(step_number: int) -> float:
        state = init_state(model, optimizer, 0, 8).replace(step=jnp.int32(step_number))
        _, metrics = step(replicate(state), shard(x), shard(y), shard(rows))
        return float(unreplicate(metrics["loss"]))

    at_0, at_5 = loss_at(0), loss_at(5)
    assert at_0 != at_5 and loss_at(5) == at_5


def test_cli_trains_end_to_end_and_writes_metrics(tmp_path):
    result = run_python(["train.py", "--config=configs/lecture.py:layernorm",
                         f"--workdir={tmp_path}", "--config.train.num_steps=30",
                         "--config.train.eval_interval=15", "--config.train.eval_iters=2",
                         "--config.sample.max_new_tokens=40"])
    assert result.returncode == 0, result.stderr
    assert "sample:" in result.stdout
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 15, 30]
    for key in ("train_loss", "val_loss", "tokens_per_s", "lr"):
        assert key in records[-1]
    assert records[-1]["tokens_per_s"] > 0
    assert json.loads((tmp_path / "config.json").read_text())["model"]["n_layer"] == 3
    assert len(json.loads((tmp_path / "vocab.json").read_text())["chars"]) == 65
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = run_python(["train.py", "--config=configs/lecture.py:layernorm",
                        f"--workdir={tmp_path}", "--config.train.num_steps=20",
                        "--config.train.eval_iters=2"])  # a run already past its steps
    assert again.returncode == 0, again.stderr
    assert ("the run is at step 30, past train.num_steps = 20: nothing to train (a larger "
            "--config.train.num_steps trains on from step 30)") in again.stdout


def test_cli_typo_is_one_line_and_nonzero(tmp_path):
    result = run_python(["train.py", "--config=configs/bigram.py", f"--workdir={tmp_path}",
                         "--config.train.num_stepz=3"])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: unknown config field --config.train.num_stepz (did you mean 'train.num_steps'?)"]


def test_runs_that_differ_only_in_their_seed_compile_one_train_step(tmp_path):
    """The seed reaches the step as an argument (the root of the dropout keys), not as a
    constant: a second seed finds the first one's program in the compilation cache."""
    from gpt_jax.trainer import Trainer

    programs, roots = [], []
    for seed in (1, 2):
        config = tiny_config(dropout=0.1)
        config.train.seed = seed
        trainer = Trainer(config, tmp_path / f"seed_{seed}")
        try:
            # The program, without the table of source frames at its end, whose order differs
            # between a program compiled here and one read from the compilation cache.
            programs.append(trainer.train_chunk.as_text().split("\nFileNames")[0])
            roots.append(trainer.seed_data)
        finally:
            trainer.close()
    assert programs[0] == programs[1]
    assert not np.array_equal(roots[0], roots[1])


def test_non_finite_losses_of_the_initial_parameters_blame_the_model_not_the_rate(
        tmp_path, monkeypatch):
    """At step 0 no update has happened: "try a lower learning rate" was the wrong advice."""
    from gpt_jax.errors import UserError
    from gpt_jax.trainer import Trainer

    monkeypatch.setattr(Trainer, "evaluate",
                        lambda self: {"train_loss": math.nan, "val_loss": math.nan})
    with pytest.raises(UserError, match=r"^non-finite evaluation losses \(train_loss nan, "
                                        r"val_loss nan\) of the initial parameters \(step 0\): "
                                        r"the model's settings give them, not training"):
        train_and_evaluate(tiny_config(), tmp_path)
    assert not (tmp_path / "checkpoints").exists()
