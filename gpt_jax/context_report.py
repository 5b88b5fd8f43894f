"""`python -m gpt_jax.context_report --workdir=DIR`: what a wider context costs in parameters.

The lecture's case for attention, measured: to see the last `context` characters, an n-gram
table needs a row for every combination of them (V^context·V parameters), an MLP over their
concatenated embeddings needs an (E, H) block more per character (linear), and a GPT only a
longer positional table (its attention weights are shared by every position). Counts come from
the models' own shapes (jax.eval_shape: nothing is allocated). Then the small models train for
the same steps on the same tokens per step, each an ordinary run in a subfolder of DIR, and
their val losses join the table in DIR/context.md. Finished runs are read back, not retrained;
one whose config file has changed since (other settings or data) is refused.
"""

from __future__ import annotations

if __name__ == "__main__":  # first, before the imports below, which take seconds (jax)
    from gpt_jax import first_step

    first_step.take()

import sys
import time
from pathlib import Path

import ml_collections
from absl import flags

from gpt_jax import cli
from gpt_jax.config import INT32_MAX, load_config_file
from gpt_jax.dataset import load_text
from gpt_jax.errors import UserError
from gpt_jax.memory import available_memory
from gpt_jax.metrics import read_metrics
from gpt_jax.models import build_model
from gpt_jax.models.ngram import BYTES_PER_PARAM, require_table_fits, sci
from gpt_jax.run_files import prepare, write_atomic
from gpt_jax.state import count_params, param_shapes
from gpt_jax.tokenizer import CharTokenizer
from gpt_jax.trainer import train_and_evaluate

FLAGS = flags.FlagValues()  # this command's own: importing it defines no global flag
USAGE = "usage: python -m gpt_jax.context_report --workdir=DIR [--steps=N]"
flags.DEFINE_string("workdir", None, "Folder for context.md and one training run per model.",
                    flag_values=FLAGS)
flags.DEFINE_integer("steps", 1000, "Training steps of every run; 0 tabulates parameters only.",
                     flag_values=FLAGS)

CONTEXTS = (1, 2, 3, 4, 8, 16, 32, 64, 256)
TRAINED = {"ngram": (1, 2, 3), "mlp": (1, 2, 3, 4, 8), "gpt": (8, 16)}
FAMILIES = {"ngram": "n-gram table (n = context+1)", "mlp": "concatenated MLP",
            "gpt": "GPT (attention)"}
CONFIG_FILES = {"ngram": "ngram.py", "mlp": "mlp.py", "gpt": "shakespeare_char_cpu.py"}
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TOKENS_PER_STEP = 768  # the CPU GPT's 12 × 64, and a multiple of every trained context
EVAL_ITERS = 50
INT64_MAX = 2**63 - 1


def family_config(family: str, context: int) -> ml_collections.ConfigDict:
    """The family's config file, seeing `context` characters. Every model trains on blocks of
    that length, so position t sees its last min(t+1, context) characters in each family, as
    in a GPT whose context is its block (model.context is read by n-gram and MLP only)."""
    from gpt_jax.train_cli import described

    config = load_config_file(str(CONFIGS / CONFIG_FILES[family]))
    changed = {"model.block_size": context}
    if config.model.name != "gpt":
        changed["model.context"] = context
    for name, value in changed.items():
        config.model[name.removeprefix("model.")] = value
    # its config file's description speaks of another context ("trigram table", "block 64")
    config.description = described(config.description, changed)
    return config


def param_count(family: str, context: int, vocab_size: int) -> tuple[int, bool]:
    """(parameters, whether they come from the formula): an n-gram table larger than int64
    has no shape at all, so its count is V^(context+1) by hand."""
    if family == "ngram" and vocab_size ** (context + 1) > INT64_MAX:
        return vocab_size ** (context + 1), True
    model = build_model(family_config(family, context).model, vocab_size, check_memory=False)
    return count_params(param_shapes(model, context)), False


def run_config(family: str, context: int, steps: int) -> ml_collections.ConfigDict:
    """The family's config as the report trains it: `steps` steps of TOKENS_PER_STEP tokens
    (blocks of `context`), evaluated and saved at the end only, no sample."""
    config = family_config(family, context)
    t = config.train
    t.num_steps = t.eval_interval = t.log_interval = t.checkpoint_every = steps
    t.batch_size, t.eval_iters = TOKENS_PER_STEP // context, EVAL_ITERS
    config.sample.max_new_tokens = 0
    return config


def val_loss(family: str, context: int, steps: int, workdir: Path) -> float:
    """The val loss after `steps` steps of this run, trained now unless it already was."""
    from gpt_jax.ladder import check_folder

    run = workdir / f"{family}_context{context}_{steps}steps"
    config = run_config(family, context, steps)
    check_folder(config, run, "a run of the report")  # a config file edited since: not reused
    done = [r["val_loss"] for r in read_metrics(run)
            if r["step"] == steps and r.get("val_loss") is not None]
    if done:
        return done[-1]
    print(f"\n== {FAMILIES[family]}, context {context}: {run}", flush=True)
    return train_and_evaluate(config, run)["val_loss"]


def trainable_here(vocab_size: int, context: int, memory: tuple[int, str]) -> bool:
    """Whether build_model would accept this n-gram on this machine."""
    try:
        require_table_fits(vocab_size, context, memory)
    except UserError:
        return False
    return True


def _count(count: int, formula: bool) -> str:
    return (f"{count:,}" if count < 10**9 else sci(count)) + (" †" if formula else "")


def report(vocab_size: int, steps: int, workdir: Path) -> str:
    """The markdown of DIR/context.md: the parameter table, then the trained runs' losses."""
    mlp, gpt = family_config("mlp", 1).model, family_config("gpt", 1).model
    counts = {(f, c): param_count(f, c, vocab_size) for f in FAMILIES for c in CONTEXTS}
    lines = [
        f"# Parameters against context (vocab V = {vocab_size})", "",
        f"MLP: {mlp.n_embd}-wide embeddings, {mlp.mlp_hidden} hidden units, so "
        f"{mlp.n_embd * mlp.mlp_hidden:,} more weights per character of context. "
        f"GPT: {gpt.n_layer} layers, {gpt.n_head} heads, {gpt.n_embd} wide, block_size = "
        f"context, so {gpt.n_embd} more (one row of its positional table). The n-gram table "
        f"grows {vocab_size}-fold.", "",
        "| context | " + " | ".join(FAMILIES.values()) + " |",
        "|---:|" + "---:|" * len(FAMILIES)]
    lines += [f"| {c} | " + " | ".join(_count(*counts[f, c]) for f in FAMILIES) + " |"
              for c in CONTEXTS]
    lines += ["", "† larger than any int64 shape: V^(context+1) from the formula, not from "
              "the model."]
    memory = available_memory()
    refused = [c for c in CONTEXTS if not trainable_here(vocab_size, c, memory)]
    if refused:
        lines += ["", f"Training takes about {BYTES_PER_PARAM} bytes per parameter and "
                  f"{memory[1]} {memory[0] / 2**30:.0f} GiB: n-gram tables from context "
                  f"{refused[0]} on are refused here."]
    if steps > 0:
        lines += ["", f"## Val loss after {steps} steps of {TOKENS_PER_STEP} tokens", "",
                  f"Every run trains on blocks of `context` characters ({TOKENS_PER_STEP} / "
                  "context of them a step), so each family predicts position t from its last "
                  "min(t+1, context) characters, and with the optimizer settings of its config "
                  f"file ({', '.join(f'configs/{name}' for name in CONFIG_FILES.values())}).",
                  "",
                  "| model | context | parameters | val loss (nats per character) |",
                  "|---|---:|---:|---:|"]
        for family, contexts in TRAINED.items():
            for c in contexts:
                loss = val_loss(family, c, steps, workdir)
                lines.append(f"| {FAMILIES[family]} | {c} | {_count(*counts[family, c])} | "
                             f"{loss:.4f} |")
    return "\n".join(lines) + "\n"


def _main(argv: list[str]) -> None:
    start = time.perf_counter()
    cli.parse_flags(argv, USAGE, FLAGS)
    from gpt_jax import compilation_cache

    compilation_cache.enable()
    F = FLAGS
    cli.require_flags(FLAGS, ("workdir",), USAGE)
    if not 0 <= F.steps <= INT32_MAX:
        raise UserError(f"--steps must be in [0, {INT32_MAX}], got {F.steps}")

    workdir = prepare(F.workdir)
    vocab_size = CharTokenizer.from_text(load_text(family_config("gpt", 1).data.path)).vocab_size
    markdown = report(vocab_size, F.steps, workdir)
    write_atomic(workdir / "context.md", markdown)
    print("\n" + markdown, flush=True)
    print(f"[{workdir / 'context.md'} in {time.perf_counter() - start:.0f} s]", file=sys.stderr)


def main() -> None:
    cli.run(lambda: _main(sys.argv))


if __name__ == "__main__":
    main()
