"""What the benchmarks compute from their timings (their commands' bad input: test_errors.py)."""

import sys
from types import SimpleNamespace

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import bench  # noqa: E402


def test_mfu_is_against_the_peak_of_every_device_the_step_runs_on():
    """Against one device's peak, 8 GPUs read 8 times their MFU (up to 400%)."""
    gpu, cpu = SimpleNamespace(platform="gpu"), SimpleNamespace(platform="cpu")
    assert bench.model_flops_utilization(1e6, 1e6, 1e12, [gpu] * 8) == 1e12 / 8e12
    assert bench.model_flops_utilization(1e6, 1e6, 1e12, [gpu]) == 1.0
    assert bench.model_flops_utilization(1e6, 1e6, 1e12, [cpu] * 8) == 1.0  # one machine
    assert bench.model_flops_utilization(None, 1e6, 1e12, [gpu]) is None


def test_translation_reads_a_run_s_sources_in_the_run_s_own_vocabulary(tmp_path):
    """It rebuilt the vocabulary from the data file as it is now: a character added since
    shifted every id, and the decoding of wrong sources was timed without a word."""
    from conftest import run_python, tiny_config
    from gpt_jax.trainer import train_and_evaluate

    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"{n}\t{n * 2}\n" for n in range(60)))
    config = tiny_config(name="encoder_decoder", block_size=11)
    config.data.update(task="pairs", path=str(pairs))
    config.train.num_steps = 2
    train_and_evaluate(config, tmp_path / "run")
    pairs.write_text("".join(f"{n}\t{n * 2}x\n" for n in range(60)))  # 'x', a new character
    result = run_python(["benchmarks/translation.py", f"--workdir={tmp_path / 'run'}",
                         "--batch=1", "--repeats=1", f"--out={tmp_path / 'out.json'}"])
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: the pairs do not fit the vocabulary this run was "
                                    "trained with"), result.stderr
