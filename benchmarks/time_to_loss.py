"""Wall time to a validation loss, ours against nanoGPT's 2,000 steps, measured side by side.

    python benchmarks/time_to_loss.py --nanogpt=/path/to/nanoGPT --nanogpt_python=/path/to/python

Runs nanoGPT's own train.py with its CPU settings for shakespeare_char (2,000 steps), then
ours, each as a fresh process with a cold compilation cache, and timestamps every evaluation
line each prints. Ours is `--config`, by default `configs/shakespeare_char_cpu.py:short`: the
same model, its cosine schedule ending at step 1,200 instead of 2,000, from a peak of 4e-3
after 50 warmup steps (the config file says why). Both evaluate on 20 batches (nanoGPT every
250 steps, ours every --eval_interval) and neither samples text while training. With
--seeds=1337,1,2 ours runs once per seed, and the ratio is also given for the seeds' mean:
their mean val loss at each evaluated step, reached after their mean time."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from absl import flags

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]  # this checkout's gpt_jax, installed or not
import children  # noqa: E402  (benchmarks/, put on the path above)
import nanogpt  # noqa: E402
import preflight  # noqa: E402

from gpt_jax import cli  # noqa: E402
from gpt_jax.config import (  # noqa: E402
    SEED_MAX,
    apply_overrides,
    load_config_file,
    override_flags,
    parse_settings,
    validate,
)
from gpt_jax.errors import UserError  # noqa: E402
from gpt_jax.run_files import write_atomic  # noqa: E402
from gpt_jax.user_files import user_path  # noqa: E402

flags.DEFINE_string("nanogpt", None, "A checkout of karpathy/nanoGPT, data prepared.")
flags.DEFINE_string("nanogpt_python", sys.executable, "A Python with torch, for nanoGPT.")
flags.DEFINE_float("target", 1.88, "The validation loss to reach.")
flags.register_validator("target", lambda target: 0 < target < math.inf,
                         "--target takes a validation loss, a positive number")
flags.DEFINE_string("config", f"{REPO / 'configs' / 'shakespeare_char_cpu.py'}:short",
                    "Our config (e.g. configs/shakespeare_char_cpu.py:modern_short).")
flags.DEFINE_multi_string("set", [], "FIELD=VALUE for our run, as --config.FIELD=VALUE (e.g. "
                          "--set=model.n_layer=2 --set=train.num_steps=375); repeatable. VALUE "
                          "is read as a Python literal, else as a word: 'constant' and constant "
                          "alike.")
flags.DEFINE_list("seeds", ["1337"], "Our runs' train.seed, one run each, one after another "
                  "(e.g. 1337,1,2): one val figure is noisy, so the ratio is given for each and "
                  "for their mean.")
flags.register_validator("seeds", lambda seeds: bool(seeds) and all(  # digits 0-9, not ²
    s.isascii() and s.isdigit() for s in seeds), "--seeds takes non-negative integers "
    "separated by commas")
flags.register_validator("seeds", lambda seeds: all(int(s) <= SEED_MAX for s in seeds),
                         "--seeds must each be in [0, 2^32 - 1]: jax keeps a seed's low 32 "
                         "bits, so 2^32 would train as 0 does")
flags.register_validator("seeds", lambda seeds: len({int(s) for s in seeds}) == len(seeds),
                         "--seeds names a seed twice: one run repeated is not a mean over seeds")
flags.DEFINE_integer("eval_interval", 250, "Our evaluations' interval, in steps (nanoGPT's: "
                     "250); a finer one finds the crossing sooner, and pays for it.",
                     lower_bound=1)
flags.DEFINE_string("out", str(REPO / "benchmarks" / "results" / "time_to_loss.json"), "JSON.")

OURS = ["--config.train.eval_iters=20", "--config.sample.max_new_tokens=0"]
# The fields our runs get from the benchmark itself, which a --set would contradict.
SET_BY_THE_BENCHMARK = {
    "train.seed": "give the seeds as --seeds=S1,S2,...",
    "train.eval_interval": "give it as --eval_interval=N",  # the figure the result records
    "train.eval_iters": "both runs evaluate on 20 batches, nanoGPT's as ours",
    "sample.max_new_tokens": "our runs sample nothing, as nanoGPT's train.py does not",
}
NANOGPT_CPU = [*nanogpt.TRAIN, "--eval_iters=20", "--log_interval=100", "--max_iters=2000",
               "--lr_decay_iters=2000", *nanogpt.MODEL_ARGS["shakespeare_char_cpu.py"]]


def timed_evaluations(cmd: list[str], cwd: Path, pattern: str, env=None) -> dict:
    """Runs cmd, timestamping each (step, val loss) its output matches; total wall time."""
    start = time.perf_counter()
    evals, lines = [], []
    with children.child(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        text=True, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
                        ) as proc:
        for line in proc.stdout:
            lines.append(line)
            match = re.search(pattern, line)
            if match:
                evals.append({"step": int(match["step"]), "val_loss": float(match["val"]),
                              "elapsed_s": time.perf_counter() - start})
    if proc.wait():
        raise nanogpt.failed(cmd, cwd, "".join(lines[-20:]), proc.returncode)
    return {"evaluations": evals, "wall_s": time.perf_counter() - start}


def first_below(result: dict, target: float) -> dict | None:
    return next((e for e in result["evaluations"] if e["val_loss"] <= target), None)


def main(argv):
    del argv
    F = flags.FLAGS
    out = preflight.writable_file(F.out)
    config = load_config_file(F.config)  # a mistake in our config is found before nanoGPT runs
    settings = parse_settings(F.set)
    for field, why in SET_BY_THE_BENCHMARK.items():
        if field in settings:
            raise UserError(f"--set={field}=...: {why}")
    apply_overrides(config, {**settings, "train.eval_interval": F.eval_interval})
    validate(config)
    spec, colon, variant = F.config.partition(":")  # train.py runs in the repository: the
    config_spec = f"{user_path(spec).absolute()}{colon}{variant}"  # file checked, not another
    if config.data.task == "pairs":
        raise UserError(f"--config={F.config} trains on source → target pairs; nanoGPT's run, "
                        f"timed against it, is on text (shakespeare_char)")
    if config.data.path:  # checked before nanoGPT's minutes, not after
        raise UserError(f"data.path={config.data.path!r}: nanoGPT's run, timed against ours, "
                        f"reads tiny Shakespeare (shakespeare_char); ours must read the same "
                        f"text, the shipped one (data.path '')")
    checkout, python = nanogpt.require_checkout(F.nanogpt, F.nanogpt_python)
    nano = timed_evaluations([python, *NANOGPT_CPU], Path(checkout),
                             r"^step (?P<step>\d+): train loss [\d.]+, val loss (?P<val>[\d.]+)")
    if not nano["evaluations"]:
        raise UserError(f"train.py of --nanogpt={F.nanogpt} printed no evaluation line like "
                        f"'step 250: train loss 1.9, val loss 1.9': is it karpathy/nanoGPT's?")
    runs = [ours_run(F, config_spec, override_flags(settings), int(seed), nano["wall_s"])
            for seed in F.seeds]
    mean = mean_over_seeds(runs)
    hit = first_below(mean, F.target)
    result = {"target": F.target, "config": F.config, "set": F.set,
              "eval_interval": F.eval_interval, "nanogpt": nano,
              "nanogpt_first_below": first_below(nano, F.target), "ours_by_seed": runs,
              "ours_mean_over_seeds": mean, "mean_first_below": hit,
              "mean_ratio_to_nanogpt_wall": hit["elapsed_s"] / nano["wall_s"] if hit else None}
    print(f"nanoGPT: 2,000 steps in {nano['wall_s']:.1f} s, final val loss "
          f"{nano['evaluations'][-1]['val_loss']:.4f}")
    for run in runs:
        last, own = run["ours"]["evaluations"][-1], run["first_below"]
        print(f"ours, seed {run['seed']}: {last['step']:,} steps in {run['ours']['wall_s']:.1f} s, "
              f"final val loss {last['val_loss']:.4f}; " + (
                  f"val loss {own['val_loss']:.4f} <= {F.target} at step {own['step']} after "
                  f"{own['elapsed_s']:.1f} s = {100 * run['ratio_to_nanogpt_wall']:.1f}% of "
                  "nanoGPT's 2,000-step wall time" if own else f"never <= {F.target}"))
    if len(runs) > 1:
        print(f"mean over {len(runs)} seeds: " + (
            f"val loss {hit['val_loss']:.4f} <= {F.target} at step {hit['step']} after "
            f"{hit['elapsed_s']:.1f} s = {100 * result['mean_ratio_to_nanogpt_wall']:.1f}%"
            if hit else f"never <= {F.target}"))
    write_atomic(out, json.dumps(result, indent=1))


def mean_over_seeds(runs: list[dict]) -> dict:
    """At each step every run evaluated: the mean val loss and the mean time to it. One run's
    20 evaluation batches move its figure by a few hundredths, so the mean is what to compare."""
    by_step = [{e["step"]: e for e in run["ours"]["evaluations"]} for run in runs]
    steps = sorted(set.intersection(*(set(evals) for evals in by_step)))
    return {"evaluations": [
        {"step": step, **{key: sum(evals[step][key] for evals in by_step) / len(by_step)
                          for key in ("val_loss", "elapsed_s")}} for step in steps]}


def ours_run(F, config_spec: str, overrides: list[str], seed: int, nano_wall_s: float) -> dict:
    """One of our runs, timed like nanoGPT's: a fresh process, a cold compilation cache;
    `overrides`: the --set values checked, as train.py's flags (override_flags)."""
    with tempfile.TemporaryDirectory() as workdir:
        ours = timed_evaluations(
            [sys.executable, "train.py", f"--config={config_spec}", *OURS,
             f"--config.train.eval_interval={F.eval_interval}", f"--config.train.seed={seed}",
             *overrides, f"--workdir={workdir}"], REPO,
            r"^step\s+(?P<step>\d+) \| train loss [\d.]+ \| val loss (?P<val>[\d.]+)",
            env={"GPT_JAX_CACHE_DIR": "off"})
    hit = first_below(ours, F.target)
    return {"seed": seed, "ours": ours, "first_below": hit,
            "ratio_to_nanogpt_wall": hit["elapsed_s"] / nano_wall_s if hit else None}


if __name__ == "__main__":
    cli.run_main(main, __doc__)
