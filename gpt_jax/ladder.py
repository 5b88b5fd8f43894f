"""`python -m gpt_jax.ladder --workdir=DIR`: train every step of the lecture, in order (and
with --modern the modern rungs after it), and write DIR/ladder.md (a table) and
DIR/ladder.png (all validation curves on one plot); --seq2seq: DIR/seq2seq.md and .png.

Each step trains in its own folders DIR/<step>/seed_S, normal runs that can be sampled from.
Re-running reads back the runs finished with the very same config and data; a step's folder
trained with other settings or on other data is refused, before any step trains.
"""

from __future__ import annotations

if __name__ == "__main__":  # first, before the imports below, which take seconds (jax)
    from gpt_jax import first_step

    first_step.take()

import contextlib
import functools
import html
import json
import os
import sys
import time
from pathlib import Path

from absl import flags
from ml_collections import config_flags

from gpt_jax import cli
from gpt_jax.errors import UserError
from gpt_jax.ladder_steps import FULL_STEP, MODERN_SEEDS, MODERN_STEPS, SEQ2SEQ_STEPS, STEPS
from gpt_jax.user_files import unreachable, user_path

FLAGS = flags.FlagValues()  # this command's own: importing it defines no global flag
USAGE = ("usage: python -m gpt_jax.ladder --workdir=DIR [--full] [--modern] [--seq2seq] "
         "[--config.section.field=value ...]")
flags.DEFINE_string("workdir", None, "Folder for the report and one run per step.",
                    flag_values=FLAGS)
flags.DEFINE_bool("full", False, "Also train the scaled-up GPT (configs/shakespeare_char.py): "
                  "a GPU job, 7–12 s a step on a 2-core CPU.", flag_values=FLAGS)
flags.DEFINE_bool("modern", False, "Also train the modern rungs after the CPU GPT "
                  "(configs/modern.py), each over 2 seeds, the CPU GPT's too.", flag_values=FLAGS)
flags.DEFINE_bool("seq2seq", False, "Train the encoder–decoder and the decoder-only GPT on the "
                  "same source → target pairs instead, and write seq2seq.md / seq2seq.png.",
                  flag_values=FLAGS)
flags.DEFINE_string("configs_dir", None, "The configs/ folder (default: the repository's).",
                    flag_values=FLAGS)

RESULT = "ladder_result.json"  # written into a step's run folder once it has finished
SAMPLE_CHARS = 60


def _configs_dir(given: str | None) -> Path:
    path = Path(given) if given else Path(__file__).resolve().parents[1] / "configs"
    if not (path / "lecture.py").is_file():
        raise UserError(f"no configs folder at {path}: pass --configs_dir=PATH/TO/configs")
    return path


def check_folder(config, workdir: Path, what: str = "a ladder run") -> None:
    """Refuses a step's folder that holds a run of other settings or on other data (its
    data.json): read back, its row would stand beside the others' as if alike."""
    from gpt_jax import resume, run_files

    for folder in (workdir.parent, workdir):  # a file there: said as such, not as config.json's
        if os.path.lexists(folder) and not folder.is_dir():
            why = unreachable(folder)  # a link in a loop, or to nothing
            raise UserError(f"{folder}: {why}" if why else
                            f"{folder} is {run_files.kind_of(folder)}, not a folder: move it away")
    stored = run_files.load_config(workdir)
    differences = [d for d in run_files.config_differences(stored, config)
                   if not d.startswith(PRESENTATION)] if stored is not None else []
    if differences:
        raise UserError(f"{workdir} holds {what} trained with other settings "
                        f"({differences[0]}); use another --workdir, or remove {workdir}")
    if stored is not None and resume.other_data(workdir, _data_fingerprint(config)):
        raise UserError(f"{workdir} holds {what} trained on other data (the sha256 in "
                        f"its {run_files.DATA} differs): use another --workdir, or remove "
                        f"{workdir}")


_fingerprints: dict[str, str | None] = {}  # by the data section: the steps share their data


def _data_fingerprint(config) -> str | None:
    """The fingerprint of the data a config trains on, as its run's data.json records it."""
    from gpt_jax.task import load_task

    key = config.data.to_json(sort_keys=True)
    if key not in _fingerprints:
        _fingerprints[key] = load_task(config).fingerprint
    return _fingerprints[key]


def _train_one(config, workdir: Path, read_only: bool = False) -> dict | None:
    """One run of a step (trained now, or read back when it finished with this very config
    and data): its final figures. `read_only`: read back or None, never trained, nothing
    said."""
    from gpt_jax import run_files
    from gpt_jax.metrics import read_metrics, steady_tokens_per_s
    from gpt_jax.trainer import train_and_evaluate

    asked = _trained_settings(json.loads(config.to_json()))
    try:
        check_folder(config, workdir)
    except UserError:
        if read_only:
            return None
        raise
    result_file = workdir / RESULT
    if run_files.file_exists(result_file):
        try:
            result = json.loads(result_file.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            result = None
        if _is_result(result) and _trained_settings(result["config"]) == asked:
            if not read_only:
                print(f"   finished before, read back from {workdir}", flush=True)
            return {**result, "trained": False}
    if read_only:
        return None
    # A run that resumes here was timed in part before: its wall time is this part's only.
    # (A saved step's folder, not the unfinished one a kill during a save leaves.)
    resumed = (workdir / run_files.CHECKPOINTS).is_dir() and any(
        folder.name.isdigit() for folder in (workdir / run_files.CHECKPOINTS).iterdir())
    start = time.perf_counter()
    record = train_and_evaluate(config, workdir)
    wall_s = time.perf_counter() - start
    from gpt_jax.restore import load_run
    from gpt_jax.state import count_params

    records = read_metrics(workdir)
    samples = sorted((workdir / run_files.SAMPLES).glob("step_*.txt"))
    result = {"seed": config.train.seed, "params": count_params(load_run(workdir).params),
              "train_loss": record["train_loss"], "val_loss": record["val_loss"],
              "val_exact_match": record.get("val_exact_match"), "wall_s": wall_s,
              "resumed": resumed,
              "tokens_per_s": steady_tokens_per_s(records),
              "sample": samples[-1].read_text(encoding="utf-8", errors="replace")
              if samples and run_files.file_exists(samples[-1]) else "",
              "curve": [{"step": r["step"], "val_loss": r["val_loss"]} for r in records],
              "config": asked}
    run_files.write_atomic(result_file, json.dumps(result, indent=1))
    return {**result, "trained": True}


PRESENTATION = ("description", "reference_val_loss")  # how a row is shown, not how it trained
# Overrides that leave the model a step trains as the lecture's (how it is measured, logged,
# saved and run), beside which the lecture's figure still stands; any other (the model, the
# data, the steps or the optimizer) makes another experiment, shown without it.
HOW_NOT_WHAT = ("train.seed", "train.eval_interval", "train.eval_iters", "train.log_interval",
                "train.loss_plot", "train.checkpoint_every", "train.keep_checkpoints",
                "train.keep_best_checkpoint", "train.steps_per_call", "train.chunk_seconds",
                "train.cpu_library_products", "train.grad_accum_steps", "sample.",
                "data.on_device_budget_mb", "model.query_chunk", "model.fused_decode",
                "model.fused_dropout", *PRESENTATION)


def _trained_settings(config: dict) -> dict:
    """A config as JSON, without the fields that only present it: a step reworded, or given
    no lecture figure, is read back, not trained again or refused."""
    return {k: v for k, v in config.items() if k not in PRESENTATION}


def _is_result(result) -> bool:
    """A ladder_result.json as _train_one writes it; anything else is computed again."""
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    try:
        return (isinstance(result, dict) and isinstance(result["config"], dict)
                and isinstance(result["params"], int) and isinstance(result["sample"], str)
                and all(number(result[k]) for k in ("seed", "train_loss", "val_loss", "wall_s"))
                and all(result[k] is None or number(result[k])
                        for k in ("val_exact_match", "tokens_per_s"))
                and all(number(p["step"]) and number(p["val_loss"]) for p in result["curve"]))
    except (KeyError, TypeError):
        return False


def run_step(name: str, config, workdir: Path, seeds: tuple[int, ...] = (),
             read_only: bool = False) -> dict | None:
    """Trains one step, each seed (default: the config's own) in its own run folder
    WORKDIR/seed_S, or reads it back: the row of the table, its figures averaged over the
    seeds. `read_only`: the row if every seed finished before, else None; nothing trained."""
    if not read_only:
        print(f"== {name}: {config.description}", flush=True)
    runs = []
    for seed, seeded in seeded_configs(config, seeds):
        run = _train_one(seeded, workdir / f"seed_{seed}", read_only)
        if run is None:
            return None
        runs.append(run)
    mean = lambda key: sum(r[key] for r in runs) / len(runs)
    from gpt_jax.task import tokens_per_step

    t = config.train
    rates = [r["tokens_per_s"] for r in runs if r["tokens_per_s"]]
    # a step's time, averaged over the seeds: the mean of their times, not of their rates
    return {"step": name, "description": config.description, "params": runs[0]["params"],
            "num_steps": t.num_steps, "seeds": [r["seed"] for r in runs], "runs": runs,
            "train_loss": mean("train_loss"), "val_loss": mean("val_loss"),
            "val_exact_match": mean("val_exact_match") if runs[0]["val_exact_match"] is not None
            else None,
            "reference_val_loss": config.reference_val_loss, "wall_s": mean("wall_s"),
            "resumed": any(r.get("resumed") for r in runs),
            "trained": any(r["trained"] for r in runs),  # now, rather than read back
            "ms_per_step": 1000 * tokens_per_step(config) * sum(1 / r for r in rates)
            / len(rates) if rates else None,
            "sample": runs[0]["sample"][:SAMPLE_CHARS], "curve": runs[0]["curve"]}


def seeded_configs(config, seeds: tuple[int, ...]):
    """(seed, the config with it) for each seed of a step (default: the config's own)."""
    for seed in seeds or (config.train.seed,):
        seeded = config.copy_and_resolve_references()
        seeded.train.seed = seed
        yield seed, seeded


def finished_after(planned: list, workdir: Path) -> list[dict]:
    """The rows of the `planned` steps that finished before, in order, up to the first that
    has not: read back, nothing trained."""
    rows = []
    for name, config, seeds in planned:
        try:
            row = run_step(name, config, workdir / name, seeds, read_only=True)
        except UserError:  # its folder's trouble is said when the ladder reaches it
            row = None
        if row is None:
            break
        rows.append(row)
    return rows


def _cell(text: str) -> str:
    """A sample as one markdown table cell."""
    return "`" + text.replace("\n", "⏎").replace("|", "\\|").replace("`", "'") + "`"


def _seeds_note(results: list[dict]) -> str:
    """Which seeds the figures are of: the table shows their values, not their names."""
    seeds = {tuple(r.get("seeds") or [x.get("seed") for x in r.get("runs", [])])
             for r in results} - {()}
    several = sorted((s for s in seeds if len(s) > 1), key=len)
    said = ""
    if several:
        names = " and ".join(map(str, several[-1]))
        said += (f"Where a val loss has figures in parentheses, they are those of seeds "
                 f"{names}, in that order, and the bold figure, the train loss and the wall "
                 f"time their means; the sample is seed {several[-1][0]}'s. ")
    single = sorted({s[0] for s in seeds if len(s) == 1 and s[0] is not None})
    if single:
        said += f"Steps of one seed: seed {', '.join(map(str, single))}. "
    return said


def report(results: list[dict]) -> str:
    """The markdown table: a row per step, the val loss averaged over its seeds (each shown)
    with its change from the row above (the step it builds on, or on pairs the alternative),
    and the time a train step took."""
    exact = any(r.get("val_exact_match") is not None for r in results)
    lines = ["| step | adds | params | steps | train loss | val loss | Δ val | " +
             ("exact match | " if exact else "lecture | ") + "ms/step | wall time | sample |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    previous = None
    for r in results:
        seeds = r.get("runs", [])
        val = f"**{r['val_loss']:.3f}**"
        if len(seeds) > 1:
            val += " (" + ", ".join(f"{x['val_loss']:.3f}" for x in seeds) + ")"
        delta = ""
        if r["step"] != FULL_STEP[0]:  # the scaled GPT builds on no step before it
            change = round(r["val_loss"] - previous, 3) + 0.0 if previous is not None else None
            delta = f"{change:+.3f}" if change is not None else ""  # (+ 0.0: no -0.000)
            previous = r["val_loss"]
        reference = (f"{r['val_exact_match']:.1%}" if exact and r["val_exact_match"] is not None
                     else f"{r['reference_val_loss']:.2f}" if r["reference_val_loss"] else "")
        ms = f"{r['ms_per_step']:.1f}" if r.get("ms_per_step") else "—"
        description = html.escape(r["description"], quote=False).replace(  # <BOS> is no tag
            "\n", "⏎").replace("|", "\\|")  # a newline would end the row, a | split the cell
        lines.append(f"| {r['step']} | {description} | {r['params']:,} | "
                     f"{r['num_steps']:,} | {r['train_loss']:.3f} | {val} | {delta} | "
                     f"{reference} | {ms} | {r['wall_s']:.0f} s{'*' * bool(r.get('resumed'))} "
                     f"| {_cell(r['sample'])} |")
    total = sum(r["wall_s"] * max(len(r.get("runs", [])), 1) for r in results)
    unit = ("per target token" if exact else
            "per character (per token on a BPE dataset)")
    lines.append(f"\nTotal wall time of the runs: {total:.0f} s. Losses in nats {unit}. "
                 f"{_seeds_note(results)}Δ val: the change of the val loss from "
                 + ("the row above (the rows are alternatives on the same pairs, not steps "
                    "built on each other)" if exact else "the step before") +
                 ". ms/step: a train step's time, evaluation excluded."
                 + (" *: resumed from a checkpoint, so the wall time is only that of the part "
                    "run last (the total too)." if any(r.get("resumed") for r in results) else ""))
    return "\n".join(lines) + "\n"




def _main(argv: list[str]) -> None:
    cli.define_overrides(FLAGS, "Overrides for every step, as --config.train.num_steps=100 (any "
                                "field of gpt_jax/config.py; repeatable; a model field reaches "
                                "the steps whose model reads it).")
    cli.parse_flags(argv, USAGE, FLAGS)
    F = FLAGS
    cli.require_flags(FLAGS, ("workdir",), USAGE)
    if F.seq2seq and (F.full or F.modern):
        raise UserError(f"--seq2seq trains the encoder–decoder's comparison alone: drop "
                        f"--{'full' if F.full else 'modern'}, or run the ladder without "
                        f"--seq2seq")
    from gpt_jax import compilation_cache, run_files

    compilation_cache.enable()
    configs = _configs_dir(F.configs_dir)
    overrides = config_flags.get_override_values(F["config"])
    if F.modern and "train.seed" in overrides:
        raise UserError(f"--config.train.seed: with --modern, the CPU GPT and each modern rung "
                        f"run seeds {' and '.join(map(str, MODERN_SEEDS))} (their mean is the "
                        f"figure); drop it, or run the ladder without --modern")
    if F.seq2seq:
        steps, report_name, title = SEQ2SEQ_STEPS, "seq2seq", \
            "The encoder–decoder and the decoder-only GPT on the same pairs"
    else:
        steps, report_name, title = list(STEPS), "ladder", "The ladder"
        steps += MODERN_STEPS if F.modern else []  # each rung builds on the one before
        steps += [FULL_STEP] if F.full else []
    planned = []
    for name, spec in steps:  # load and check every config before training any
        try:
            config = step_config(configs / spec, overrides)
        except UserError as e:  # the overrides apply to every step: say which one refuses
            raise UserError(f"step {name} ({spec}): {e}") from None
        seeds = MODERN_SEEDS if F.modern and (name, spec) in [STEPS[-1], *MODERN_STEPS] else ()
        planned.append((name, config, seeds))
    before = _folders(user_path(F.workdir))
    workdir = run_files.prepare(F.workdir)  # once every step's config is known to be good
    try:
        _run_ladder(planned, workdir, report_name, title)
    except BaseException:  # data a step could not read, say: no empty folders left behind
        for folder in sorted(_folders(workdir) - before, key=len, reverse=True):
            with contextlib.suppress(OSError):  # not empty: kept
                os.rmdir(folder)
        raise


def _folders(root: Path) -> set[str]:
    """`root` and the folders under it, as they are now (none if it does not exist)."""
    return {folder for folder, _, _ in os.walk(os.path.realpath(root))}


def _run_ladder(planned: list, workdir: Path, report_name: str, title: str) -> None:
    """Trains (or reads back) each planned step in turn, writing the report as it goes."""
    from gpt_jax import run_files
    from gpt_jax.plots import plot_ladder

    results = []
    markdown, plot = workdir / f"{report_name}.md", workdir / f"{report_name}.png"
    def write(results):
        run_files.write_atomic(markdown, f"# {title}\n\n" + report(results))
        plot_ladder({r["step"]: r["curve"] for r in results},
                    {r["step"]: r["reference_val_loss"] for r in results  # pairs, modern: none
                     if r["val_exact_match"] is None and r["reference_val_loss"]}, plot, title)

    for name, config, seeds in planned:  # a folder to refuse, refused before any training
        for seed, seeded in seeded_configs(config, seeds):
            check_folder(seeded, workdir / name / f"seed_{seed}")
    for i, (name, config, seeds) in enumerate(planned):
        results.append(run_step(name, config, workdir / name, seeds))
        # After a step trained now, the report so far and the later steps that finished before
        # (a rerun that retrains a middle step keeps their rows); steps only read back leave
        # the report as it was until the last, so a rerun stopped half-way never shortens it.
        if results[-1]["trained"] or i == len(planned) - 1:
            write(results + finished_after(planned[i + 1:], workdir))
    print("\n" + report(results) + f"\nwritten: {markdown}, {plot}")


def step_config(path: Path, overrides: dict):
    """A step's config file with the ladder's overrides, checked; its description names the
    fields they changed in it (a field its model, or a switch it has off, does not read is not
    changed: its folder, row and lecture figure stay as they were)."""
    from gpt_jax.config import (
        anchor_data_paths,
        apply_overrides,
        load_config_file,
        reset_unread,
        switched_off,
        validate,
    )
    from gpt_jax.train_cli import described

    config = load_config_file(str(path))
    apply_overrides(config, overrides)  # first: a field that does not exist is refused here
    reset_unread(config)  # a model field reaches the steps whose model reads it
    own = load_config_file(str(path))
    for field, _, _ in switched_off(config):  # and a field read with a switch, the steps
        section, name = field.split(".")     # that have it on (Muon's, RoPE's)
        config[section][name] = own[section][name]
    changed = {field: _value(config, field) for field in overrides
               if _value(config, field) != _value(own, field)}
    config.description = described(config.description, changed)
    if "reference_val_loss" not in changed and any(  # the user's own figure stands
            not field.startswith(HOW_NOT_WHAT) for field in changed):  # another model, data
        config.reference_val_loss = 0.0  # or training: the lecture's loss is not its
    anchor_data_paths(config)
    validate(config)
    return config


def _value(config, field: str):
    """The value of a dotted field ("model.n_embd") of a config."""
    return functools.reduce(getattr, field.split("."), config)


def main() -> None:
    cli.run(lambda: _main(sys.argv))


if __name__ == "__main__":
    main()
