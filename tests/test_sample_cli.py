"""`python -m gpt_jax.sample`: text from a workdir alone (bad input: see test_errors.py)."""

import subprocess
import sys

import pytest

from conftest import REPO, run_python, tiny_config
from gpt_jax.trainer import train_and_evaluate


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
    # each printed with its newline: the prompt and exactly 30 new characters
    assert all(s.endswith("\n") and len(s) - 1 == len("To be") + 30 for s in samples)
    assert samples[0] != samples[1]  # a batch of two draws, not one drawn twice
    other = _sample(runs[name], *[a for a in args if a != "--seed=3"], "--seed=4")
    assert other.returncode == 0 and other.stdout != first.stdout  # the seed is read


def test_top_k_1_a_tiny_top_p_and_a_cold_temperature_each_sample_greedily(runs):
    """Each option is applied, not only accepted: --top_k=1 writes the same text whatever the
    seed; so do --top_p=0.001 (the likeliest token alone reaches it) and --temperature=1e-6
    (after 10 steps the two likeliest logits can be 0.01 apart: 0.01 drew the other one) at
    the seed whose free draws are other text."""
    def text(*flags):
        result = _sample(runs["gpt"], "--prompt=To be", "--max_new_tokens=30", *flags)
        assert result.returncode == 0, result.stderr
        return result.stdout

    greedy = text("--top_k=1", "--seed=3")
    assert text("--top_k=1", "--seed=4") == greedy
    assert text("--seed=3") != greedy  # free draws at this seed are not the greedy text
    assert text("--top_p=0.001", "--seed=3") == greedy
    assert text("--temperature=1e-6", "--seed=3") == greedy


def test_long_generation_and_long_prompt(runs):
    """A prompt longer than the block (only its last block_size characters are read) and a
    continuation many blocks long: the prompt, then exactly 50 new characters."""
    prompt = "abc " * 10
    result = _sample(runs["gpt"], "--prompt=" + prompt, "--max_new_tokens=50")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(prompt) and len(result.stdout) - 1 == len(prompt) + 50
    last_block = _sample(runs["gpt"], "--prompt=" + prompt[-8:], "--max_new_tokens=50")
    assert last_block.stdout[8:] == result.stdout[len(prompt):]  # block_size is 8


def test_a_reader_that_stops_reading_ends_the_sampler_quietly(runs):
    """`sample ... | head`: once the pipe's reader is gone, the sampler ends without a
    traceback, with the status a shell gives a process that SIGPIPE ended (141)."""
    proc = subprocess.Popen([sys.executable, "-m", "gpt_jax.sample", f"--workdir={runs['gpt']}",
                             "--num_samples=2", "--max_new_tokens=20"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # before the sampler has printed anything
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141 and err == "", err


def test_a_long_prompt_file_is_not_sized_as_one_batch(runs, tmp_path):
    """Text prompts are continued one after the other: the memory estimate is one prompt's
    batch. Two million lines were refused as 2,000,000 × 500 tokens "needing about 98 GiB"."""
    many = tmp_path / "many.txt"
    many.write_text("ROMEO\n" * 2_000_000)
    proc = subprocess.Popen([sys.executable, "-m", "gpt_jax.sample", f"--workdir={runs['gpt']}",
                             f"--prompts={many}", "--max_new_tokens=500"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    proc.stdout.close()  # the first prompt's continuation is enough: the rest is not needed
    _, err = proc.communicate(timeout=120)
    assert first.startswith("ROMEO") and proc.returncode == 141 and err == "", err


def test_an_unusable_compilation_cache_is_one_warning_line(runs, tmp_path):
    """A file where GPT_JAX_CACHE_DIR points: jax printed two lines of Python warning for every
    program it could not cache; now one line says the cache is not used, and sampling goes on."""
    (tmp_path / "a_file").write_text("")
    result = run_python(["-m", "gpt_jax.sample", f"--workdir={runs['gpt']}",
                         "--max_new_tokens=5"], env={"GPT_JAX_CACHE_DIR": str(tmp_path / "a_file"),
                                                     "JAX_COMPILATION_CACHE_DIR": ""})
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == (
        f"warning: GPT_JAX_CACHE_DIR={tmp_path / 'a_file'} cannot hold the compilation cache "
        f"(not a folder): compiling without it")
    assert "Warning" not in result.stderr and len(result.stderr.splitlines()) == 2


def test_the_memory_check_counts_the_pass_over_the_prompt_windows():
    """Measured with the CPU GPT at 1 layer, 32 wide: 50,000 samples peaked at 8.6 GiB, and
    200,000 were killed by the kernel past 24 GiB, though the check (which left out the
    prompt window's pass) estimated them at 8 GiB. With the CPU GPT itself and 100 new
    tokens, 1,500 samples peaked at 2.67 GiB and 5,000 at 7.94, a little above the estimate
    then. The estimate stays between what ran and what could not."""
    from gpt_jax import memory
    from gpt_jax.config import load_config_file

    config = load_config_file(str(REPO / "configs" / "shakespeare_char_cpu.py"))
    def need(config, n: int, new_tokens: int) -> float:
        parts = memory.sampling_bytes(config, 65, n, new_tokens)
        return sum(size for size, _ in parts.values()) / 2**30

    assert need(config, 1500, 100) > 2.67 and need(config, 5000, 100) > 7.94
    config.model.update(dict(n_layer=1, n_embd=32, n_head=2))
    assert need(config, 50_000, 1) < 8.6
    assert need(config, 200_000, 1) > 24


def test_prompts_from_a_terminal_are_asked_for_not_waited_on_in_silence(runs):
    """--prompts=- at a terminal waited without a word, like a command that hung."""
    import os
    import pty

    main, terminal = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "gpt_jax.sample", f"--workdir={runs['gpt']}",
                             "--prompts=-", "--max_new_tokens=3"], cwd=REPO, stdin=terminal,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.close(terminal)
    os.write(main, b"ab\n\x04")  # a line, then Ctrl-D: the end of the terminal's input
    out, err = proc.communicate(timeout=120)
    os.close(main)
    assert proc.returncode == 0, err
    assert err.splitlines()[0] == ("reading the prompts from the terminal, one per line; end "
                                   "them with Ctrl-D")
    assert out.startswith("ab")


def test_a_run_without_a_newline_asks_for_a_prompt_and_a_block_of_one_slides_by_one(tmp_path):
    """The default prompt, a newline, was silently id 0 (a space here) where the vocabulary
    has none; and a block of 1, which slides by 1 by default, refused --slide=1."""
    text = tmp_path / "no_newline.txt"
    text.write_text("abc cab bca " * 50)
    config = tiny_config(name="bigram", block_size=1)
    config.data.path = str(text)
    config.train.num_steps = 3
    train_and_evaluate(config, tmp_path / "run")
    result = _sample(tmp_path / "run", "--max_new_tokens=5")
    assert result.returncode == 2 and result.stderr == (
        "error: this run's vocabulary has no newline, the default prompt: give a prompt of "
        "its own characters\n")
    (tmp_path / "prompts.txt").write_text("ab\n\nc\n")
    result = _sample(tmp_path / "run", f"--prompts={tmp_path / 'prompts.txt'}")
    assert result.returncode == 2 and "line 2, is empty" in result.stderr, result.stderr
    result = _sample(tmp_path / "run", "--prompt=ab", "--slide=1", "--max_new_tokens=5")
    assert result.returncode == 0 and result.stdout.startswith("ab"), result.stderr
    result = _sample(tmp_path / "run", "--prompt=ab", "--slide=2")
    assert result.returncode == 2 and "--slide must be at most 1 (block_size 1)" in result.stderr
