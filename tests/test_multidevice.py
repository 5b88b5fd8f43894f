"""Data parallelism changes who computes, never what is computed: every layout of the same
global batch ends with the same parameters, dropout included (each example's masks come from
its row in the global batch, not from the device or micro-batch that computes it).

Tolerance: a layout only changes the order of float32 sums (a gradient summed over 16 rows
at once, or as partial sums over devices or micro-batches). Those differ by a few float32
ulps; Adam's lr·m/√v magnifies them where a gradient is near zero, and over 12 steps the
params and the optimizer's moments of a layout stay within 1e-5 relative + 1e-7 absolute of
another's (measured: about 1e-7), while a different dropout mask or batch moves the params by
1e-3 or more.
"""

import json

import pytest

from conftest import assert_trees_close, devices_env, run_python, tiny_config
from gpt_jax.restore import load_run
from gpt_jax.trainer import train_and_evaluate

OVERRIDES = {"train.num_steps": "12", "train.batch_size": "16", "train.eval_interval": "4",
             "train.eval_iters": "2", "train.checkpoint_every": "100", "model.dropout": "0.2"}


def _losses(workdir):
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return [(r["step"], r["train_loss"], r["val_loss"]) for r in map(json.loads, lines)]


@pytest.fixture(scope="module")
def one_device(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("one")
    config = tiny_config()
    for key, value in OVERRIDES.items():
        section, field = key.split(".")
        config[section][field] = type(config[section][field])(value)
    train_and_evaluate(config, workdir)
    return workdir


@pytest.mark.parametrize("devices, accum", [(8, 1), (1, 4), (2, 2)],
                         ids=["8_devices", "4_micro_batches", "2_devices_2_micro_batches"])
def test_every_layout_matches_one_device_with_dropout_on(tmp_path, one_device, devices, accum):
    (tmp_path / "tiny.py").write_text(
        "from conftest import tiny_config\n"
        "def get_config():\n    return tiny_config()\n")
    workdir = tmp_path / "run"
    result = run_python(
        ["train.py", f"--config={tmp_path / 'tiny.py'}", f"--workdir={workdir}",
         *[f"--config.{k}={v}" for k, v in OVERRIDES.items()],
         f"--config.train.grad_accum_steps={accum}"],
        env={**devices_env(devices), "PYTHONPATH": str(tmp_path.parent) + ":tests"})
    assert result.returncode == 0, result.stderr
    assert f"{devices} cpu device(s)" in result.stdout

    steps_one, steps_other = _losses(one_device), _losses(workdir)
    assert [s[0] for s in steps_one] == [s[0] for s in steps_other] == [0, 4, 8, 12]
    for a, b in zip(steps_one, steps_other, strict=True):
        assert abs(a[1] - b[1]) < 1e-5 and abs(a[2] - b[2]) < 1e-5
    assert_trees_close(load_run(one_device).state, load_run(workdir).state, rtol=1e-5,
                       atol=1e-7)
