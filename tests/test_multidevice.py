"""Data parallelism changes who computes, never what is computed."""

import json

from conftest import assert_trees_close, run_python, tiny_config
from gpt_jax.restore import load_run
from gpt_jax.trainer import train_and_evaluate

OVERRIDES = {"train.num_steps": "12", "train.batch_size": "16", "train.eval_interval": "4",
             "train.eval_iters": "2", "train.checkpoint_every": "100"}


def _losses(workdir):
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return [(r["step"], r["train_loss"], r["val_loss"]) for r in map(json.loads, lines)]


def test_eight_fake_devices_match_one_device(tmp_path):
    one, eight = tmp_path / "one", tmp_path / "eight"
    config = tiny_config()
    for key, value in OVERRIDES.items():
        section, field = key.split(".")
        config[section][field] = type(config[section][field])(value)
    train_and_evaluate(config, one)

    (tmp_path / "tiny.py").write_text(
        "from conftest import tiny_config\n"
        "def get_config():\n    return tiny_config()\n")
    result = run_python(
        ["train.py", f"--config={tmp_path / 'tiny.py'}", f"--workdir={eight}",
         *[f"--config.{k}={v}" for k, v in OVERRIDES.items()]],
        env={"XLA_FLAGS": "--xla_force_host_platform_device_count=8",
             "PYTHONPATH": str(tmp_path.parent) + ":tests"})
    assert result.returncode == 0, result.stderr
    assert "8 cpu device(s)" in result.stdout

    steps_one, steps_eight = _losses(one), _losses(eight)
    assert [s[0] for s in steps_one] == [s[0] for s in steps_eight] == [0, 4, 8, 12]
    for a, b in zip(steps_one, steps_eight, strict=True):
        assert abs(a[1] - b[1]) < 1e-5 and abs(a[2] - b[2]) < 1e-5
    assert_trees_close(load_run(one).params, load_run(eight).params, rtol=1e-4, atol=1e-6)
