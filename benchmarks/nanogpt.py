"""How the benchmarks run karpathy/nanoGPT's own train.py, from a checkout outside this repo
(none of its code is ours), with our configs' model and batch settings: on the CPU eager, on a
GPU as its README runs it (torch.compile, bfloat16 autocast)."""

import os
import shutil
from pathlib import Path

import children  # benchmarks/, beside this file

from gpt_jax.errors import UserError
from gpt_jax.user_files import user_path

TRAIN = ["train.py", "config/train_shakespeare_char.py", "--device=cpu", "--compile=False"]
TRAIN_CUDA = ["train.py", "config/train_shakespeare_char.py", "--device=cuda", "--compile=True"]

# Per config of ours: the flags that make nanoGPT train the same sizes and batch shape. Two
# details of the model differ: ours has biases (nanoGPT's bias=False) and a tanh-approximated
# GELU (nanoGPT's is exact); nanoGPT draws its own batches.
MODEL_ARGS = {
    "shakespeare_char_cpu.py": ["--block_size=64", "--batch_size=12", "--n_layer=4",
                                "--n_head=4", "--n_embd=128", "--dropout=0.0"],
    "shakespeare_char.py": [],  # its config file's own settings
}


def require_checkout(checkout: str | None, python: str) -> tuple[str, str]:
    """A nanoGPT checkout with shakespeare_char prepared and a Python to run it, as paths a
    child process can use (`~` expanded, a bare name found on PATH), or one line saying what
    is missing."""
    if not checkout:
        raise UserError("pass --nanogpt=DIR, a checkout of karpathy/nanoGPT")
    folder = user_path(checkout)
    for needed in ("train.py", TRAIN[1]):
        if not (folder / needed).is_file():
            raise UserError(f"--nanogpt={checkout} is not a nanoGPT checkout: no {needed} in it")
    # meta.pkl gives nanoGPT the vocabulary's size; without it, it would train on GPT-2's.
    for prepared in ("train.bin", "val.bin", "meta.pkl"):
        if not (folder / "data" / "shakespeare_char" / prepared).is_file():
            raise UserError(f"--nanogpt={checkout} has no data/shakespeare_char/{prepared}: run "
                            f"its data/shakespeare_char/prepare.py first")
    found = shutil.which(python) if os.sep not in python else None
    executable = Path(found) if found else user_path(python)
    if not (executable.is_file() and os.access(executable, os.X_OK)):
        raise UserError(f"--nanogpt_python={python} is not an executable file")
    return str(folder.absolute()), str(executable.absolute())


def failed(cmd: list[str], cwd: str | Path, output: str, status: int) -> UserError:
    """A benchmarked command that failed: its name and folder, its exit status and its last
    line."""
    last = output.strip().splitlines()[-1] if output.strip() else "no output"
    return UserError(f"{Path(cmd[0]).name} {cmd[1]} in {cwd} failed (exit status {status}): "
                     f"{last}")


def run(cmd: list[str], cwd: str) -> str:
    """nanoGPT's stdout, or one line naming the failure."""
    proc = children.run(cmd, cwd=cwd)
    if proc.returncode:
        raise failed(cmd, cwd, proc.stderr or proc.stdout, proc.returncode)
    return proc.stdout
