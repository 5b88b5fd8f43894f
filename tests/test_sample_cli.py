"""`python -m gpt_jax.sample`: text from a workdir alone; bad input never touches it."""

import os

import pytest

from conftest import run_python, tiny_config
from gpt_jax.trainer import train_and_evaluate


def _snapshot(workdir):
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in workdir.rglob("*")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    workdirs = {}
    for name in ("gpt", "bigram"):
        workdir = tmp_path_factory.mktemp(name)
        config = tiny_config(name=name)
        config.train.num_steps = 10
        train_and_evaluate(config, workdir)
        workdirs[name] = workdir
    return workdirs


def _sample(workdir, *args):
    return run_python(["-m", "gpt_jax.sample", f"--workdir={workdir}", *args])


@pytest.mark.parametrize("name", ["gpt", "bigram"])
def test_same_seed_same_text_and_batched_samples(runs, name):
    args = ["--prompt=To be", "--max_new_tokens=30", "--num_samples=2", "--seed=3",
            "--top_k=20", "--top_p=0.9", "--temperature=0.8"]
    first, second = _sample(runs[name], *args), _sample(runs[name], *args)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    samples = first.stdout.split("\n" + "-" * 40 + "\n")
    assert len(samples) == 2 and all(s.startswith("To be") for s in samples)
    assert all(len(s.rstrip("\n")) >= len("To be") + 30 - 2 for s in samples)


def test_long_generation_and_long_prompt(runs):
    result = _sample(runs["gpt"], "--prompt=" + "abc " * 10, "--max_new_tokens=50")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("args, message", [
    (["--prompt=héllo"], "character 'é' is not in the vocabulary"),
    (["--temperature=0"], "--temperature must be > 0"),
    (["--top_p=0"], r"--top_p must be in \(0, 1\]"),
    (["--top_p=1.5"], r"--top_p must be in \(0, 1\]"),
    (["--top_k=0"], "--top_k must be >= 1"),
    (["--step=7"], "no checkpoint at step 7"),
])
def test_bad_input_is_one_line_and_touches_nothing(runs, args, message):
    workdir = runs["gpt"]
    before = _snapshot(workdir)
    result = _sample(workdir, *args)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert __import__("re").search(message, lines[0]), lines[0]
    assert _snapshot(workdir) == before


def test_a_workdir_without_checkpoints_is_refused(tmp_path):
    os.makedirs(tmp_path / "empty")
    result = _sample(tmp_path / "empty")
    assert result.returncode != 0 and "is not a training run" in result.stderr
    assert list((tmp_path / "empty").iterdir()) == []
