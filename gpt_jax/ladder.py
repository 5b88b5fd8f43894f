"""`python -m gpt_jax.ladder --workdir=DIR`: train every step of the lecture, in order, and
write DIR/ladder.md (a table) and DIR/ladder.png (all validation curves on one plot).

Each step trains in its own folder DIR/<step>, a normal run that can be sampled from.
Re-running skips the steps already finished and reads their results back.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from absl import flags
from ml_collections import config_flags

from gpt_jax import cli
from gpt_jax.config import base_config
from gpt_jax.errors import UserError

USAGE = ("usage: python -m gpt_jax.ladder --workdir=DIR [--full] "
         "[--config.section.field=value ...]")
flags.DEFINE_string("workdir", None, "Folder for the report and one run per step.")
flags.DEFINE_bool("full", False, "Also train the scaled-up GPT (configs/shakespeare_char.py): "
                  "a GPU job, tens of seconds per step on a CPU.")
flags.DEFINE_string("configs_dir", None, "The configs/ folder (default: the repository's).")
config_flags.DEFINE_config_dict(
    "config", base_config(), "Overrides for every step, as --config.train.num_steps=100 "
    "(any field of gpt_jax/config.py; repeatable).")

# (step, config spec relative to configs/), in the lecture's order.
STEPS = [("bigram", "bigram.py"), ("head", "ladder.py:head"),
         ("multihead", "ladder.py:multihead"), ("ffwd", "ladder.py:ffwd"),
         ("residual", "ladder.py:residual"), ("layernorm", "ladder.py:layernorm"),
         ("gpt_cpu", "shakespeare_char_cpu.py")]
FULL_STEP = ("gpt", "shakespeare_char.py")
RESULT = "ladder_result.json"  # written into a step's run folder once it has finished
SAMPLE_CHARS = 60


def _configs_dir(given: str | None) -> Path:
    path = Path(given) if given else Path(__file__).resolve().parents[1] / "configs"
    if not (path / "ladder.py").is_file():
        raise UserError(f"no configs folder at {path}: pass --configs_dir=PATH/TO/configs")
    return path


def run_step(name: str, config, workdir: Path) -> dict:
    """Trains one step (or reads back its finished result): the row of the table. A step that
    finished, or started, with other settings is refused rather than reused or overwritten."""
    from gpt_jax import run_dir
    from gpt_jax.metrics import read_metrics
    from gpt_jax.trainer import train_and_evaluate

    asked = json.loads(config.to_json())
    stored = run_dir.load_config(workdir)
    differences = run_dir.config_differences(stored, config) if stored is not None else []
    if differences:
        raise UserError(f"{workdir} holds the ladder step {name!r} trained with other settings "
                        f"({differences[0]}); use another --workdir, or remove {workdir}")
    result_file = workdir / RESULT
    if result_file.exists():
        try:
            result = json.loads(result_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            result = None
        if isinstance(result, dict) and result.get("config") == asked:
            print(f"== {name}: finished before, read back from {workdir}", flush=True)
            return result
    print(f"== {name}: {config.description}", flush=True)
    start = time.perf_counter()
    record = train_and_evaluate(config, workdir)
    wall_s = time.perf_counter() - start
    samples = sorted((workdir / "samples").glob("step_*.txt"))
    sample = samples[-1].read_text(encoding="utf-8") if samples else ""
    from gpt_jax.restore import load_run
    from gpt_jax.state import count_params

    result = {"step": name, "description": config.description,
              "params": count_params(load_run(workdir).params),
              "num_steps": config.train.num_steps, "train_loss": record["train_loss"],
              "val_loss": record["val_loss"], "reference_val_loss": config.reference_val_loss,
              "wall_s": wall_s, "sample": sample[:SAMPLE_CHARS],
              "curve": [{"step": r["step"], "val_loss": r["val_loss"]}
                        for r in read_metrics(workdir)], "config": asked}
    run_dir.write_atomic(result_file, json.dumps(result, indent=1))
    return result


def _cell(text: str) -> str:
    """A sample as one markdown table cell."""
    return "`" + text.replace("\n", "⏎").replace("|", "\\|").replace("`", "'") + "`"


def report(results: list[dict]) -> str:
    lines = ["| step | adds | params | steps | train loss | val loss | lecture | wall time "
             "| sample |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        lines.append(f"| {r['step']} | {r['description']} | {r['params']:,} | "
                     f"{r['num_steps']:,} | {r['train_loss']:.3f} | {r['val_loss']:.3f} | "
                     f"{r['reference_val_loss']:.2f} | {r['wall_s']:.0f} s | "
                     f"{_cell(r['sample'])} |")
    total = sum(r["wall_s"] for r in results)
    lines.append(f"\nTotal wall time of the steps: {total:.0f} s.")
    return "\n".join(lines) + "\n"


def _main(argv: list[str]) -> None:
    cli.parse_flags(argv, USAGE, "workdir")
    F = flags.FLAGS
    if not F.workdir:
        raise UserError(USAGE)
    from gpt_jax import compilation_cache, run_dir
    from gpt_jax.config import apply_overrides, load_config_file, validate
    from gpt_jax.plots import plot_ladder

    compilation_cache.enable()
    configs = _configs_dir(F.configs_dir)
    overrides = config_flags.get_override_values(F["config"])
    workdir = run_dir.prepare(F.workdir)
    steps = STEPS + [FULL_STEP] if F.full else STEPS
    planned = []
    for name, spec in steps:  # load and check every config before training any
        config = load_config_file(str(configs / spec))
        apply_overrides(config, overrides)
        validate(config)
        planned.append((name, config))
    results = []
    for name, config in planned:
        results.append(run_step(name, config, workdir / name))
        table = report(results)
        run_dir.write_atomic(workdir / "ladder.md", "# The ladder\n\n" + table)
        plot_ladder({r["step"]: r["curve"] for r in results},
                    {r["step"]: r["reference_val_loss"] for r in results},
                    workdir / "ladder.png")
    print("\n" + table + f"\nwritten: {workdir / 'ladder.md'}, {workdir / 'ladder.png'}")


def main() -> None:
    cli.run(lambda: _main(sys.argv))


if __name__ == "__main__":
    main()
