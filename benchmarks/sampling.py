"""Sampling speed: our cached sampler against our own uncached path, and the time from
command start to the first sampled token.

    python benchmarks/sampling.py [--out=benchmarks/results/sampling.json]

For the CPU GPT (4 layers, 128 wide, block 64) and the scaled GPT (6 layers, 384 wide,
block 256), untrained: 500 new tokens, batch 1. Figures depend on the machine; rerun both
paths in the same run to compare.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from absl import flags

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's gpt_jax, installed or not
import children  # noqa: E402  (benchmarks/, this script's folder)
import preflight  # noqa: E402

from gpt_jax import cli  # noqa: E402
from gpt_jax.run_files import write_atomic  # noqa: E402

SAMPLED_TOKENS = 500  # per timed run, here and in bench.py

if __name__ == "__main__":  # flags of its own only when run alone, not imported by bench.py
    flags.DEFINE_string("out", str(REPO / "benchmarks" / "results" / "sampling.json"), "JSON.")
    flags.DEFINE_integer("new_tokens", SAMPLED_TOKENS, "Tokens to generate.", lower_bound=1,
                         upper_bound=2**31 - 1)
    flags.DEFINE_integer("repeats", 3, "Timed runs of each path, cached and uncached (after "
                         "one compiling run of each); the median is reported.", lower_bound=1)
    flags.DEFINE_multi_string("configs", ["shakespeare_char_cpu.py", "shakespeare_char.py"],
                              "Config files under configs/.")


def _time(fn, repeats: int) -> tuple[float, float]:
    """(first call in seconds, median of the next `repeats`) with results on the host."""
    import jax

    start = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def sampling_config(spec: str, new_tokens: int, overrides: dict | None = None) -> tuple:
    """The config of `spec` with `overrides`, validated, and its tokenizer; a UserError if
    sampling `new_tokens` cannot fit in memory. Cheap: every config is checked before any is
    timed."""
    from gpt_jax import memory
    from gpt_jax.config import apply_overrides, load_config_file, validate
    from gpt_jax.dataset import default_corpus_path
    from gpt_jax.tokenizer import CharTokenizer

    config = load_config_file(str(REPO / "configs" / spec))
    apply_overrides(config, overrides or {})
    validate(config)
    tokenizer = CharTokenizer.from_text(default_corpus_path().read_text(encoding="utf-8"))
    memory.require_fits(memory.sampling_bytes(config, tokenizer.vocab_size, 1, new_tokens,
                                              fewer="lower --new_tokens"), "sampling")
    return config, tokenizer


def make_untrained_run(spec: str, workdir: Path, new_tokens: int,
                       overrides: dict | None = None):
    """A workdir holding an untrained checkpoint of `spec` (with `overrides`, as
    {'model.compute_dtype': 'bfloat16'}), as the trainer would write it."""
    from gpt_jax import run_files
    from gpt_jax.checkpoint import Checkpoints
    from gpt_jax.models import build_model
    from gpt_jax.optim import make_optimizer
    from gpt_jax.state import init_state

    config, tokenizer = sampling_config(spec, new_tokens, overrides)
    model = build_model(config.model, tokenizer.vocab_size)
    state = init_state(model, make_optimizer(config.train), 0, config.model.block_size)
    workdir.mkdir(parents=True)
    run_files.save_config(workdir, config)
    run_files.save_vocab(workdir, tokenizer)
    checkpoints = Checkpoints(workdir)
    checkpoints.save(0, state)
    checkpoints.close()
    return config, tokenizer, model, state.params


def time_sampling(spec: str, new_tokens: int = SAMPLED_TOKENS, repeats: int = 3,
                  overrides: dict | None = None) -> dict:
    """Cached and uncached tokens/s for an untrained `spec`, batch 1, each the median of
    `repeats` runs, and the time from a cold `python -m gpt_jax.sample` to its first token."""
    import jax

    from gpt_jax.generation import generate, prompt_window

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp) / "run"
        config, tokenizer, model, params = make_untrained_run(spec, workdir, new_tokens,
                                                              overrides)
        T = config.model.block_size
        window, n = prompt_window(tokenizer.encode("\n"), T, 1)
        row = {"sample_new_tokens": new_tokens}
        for name, use_cache in (("cached", True), ("uncached", False)):
            fn = functools.partial(generate, model, params, window, n, jax.random.key(0),
                                   block_size=T, max_new_tokens=new_tokens, use_cache=use_cache)
            first, median = _time(fn, repeats)
            row[f"{name}_compile_and_run_s"] = first
            row[f"{name}_tokens_per_s"] = new_tokens / median
        row["sampling_speedup"] = row["cached_tokens_per_s"] / row["uncached_tokens_per_s"]
        start = time.perf_counter()  # a cold interpreter, restore, compile, one new token
        children.run([sys.executable, "-m", "gpt_jax.sample", f"--workdir={workdir}",
                      "--max_new_tokens=1"], cwd=REPO,
                     env={**os.environ, "GPT_JAX_CACHE_DIR": "off"}).check_returncode()
        row["command_to_first_token_s"] = time.perf_counter() - start
    return row


def main(argv):
    del argv
    import jax

    F = flags.FLAGS
    out = preflight.writable_file(F.out)
    preflight.decoder_only_configs(F.configs)
    for spec in F.configs:  # each fits before any is timed
        sampling_config(spec, F.new_tokens)
    rows = []
    for spec in F.configs:
        row = {"config": spec, **time_sampling(spec, F.new_tokens, F.repeats)}
        rows.append(row)
        print(f"{spec}: cached {row['cached_tokens_per_s']:,.0f} tokens/s, uncached "
              f"{row['uncached_tokens_per_s']:,.0f} tokens/s ({row['sampling_speedup']:.1f}×); "
              f"command start to first token {row['command_to_first_token_s']:.1f} s",
              flush=True)
    result = {"device": str(jax.devices()[0].device_kind), "jax": jax.__version__,
              "rows": rows}
    write_atomic(out, json.dumps(result, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    cli.run_main(main, __doc__)
