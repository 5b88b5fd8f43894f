"""Translation speed: the encoder–decoder's cached decoding (encoder once, the source's keys
and values projected once, the target's keys and values kept) against re-running the decoder
on the whole prefix for every token.

    python benchmarks/translation.py [--workdir=RUN] [--batch=64 --batch=256 ...] [--out=...json]

With --workdir, a trained run (e.g. of configs/seq2seq.py); without, configs/seq2seq.py
untrained. The paths decode the same held-out sources in the same run, at each --batch: a
small batch shows the per-token overhead of a decoding step, a large one the arithmetic. The
cached path runs twice, with every head in one product (`model.fused_decode`, the default
of configs/seq2seq.py; models/fused_heads.py) and head by head (the Heads, attention.py).
Each path's products are computed as it computes them by default (gpt_jax/xla_options.py:
XLA's own kernels for the cached decoding, YNNPACK for the uncached decoder, each the faster
for it), and, for the record, the other way too: the cached decoding by YNNPACK and the
uncached decoder by XLA's kernels. Every speed-up is over the uncached decoder's fastest way,
the one of the lower median (`speedup_over` in the JSON). The paths run in turns, so that a
change of the machine's load falls on all of them; a speed-up is the median of the turns'
ratios, printed with their range. Decoding rates count the target's tokens; the encoder's
counts the source tokens it reads, padded to the sources' length (`source_tokens`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import statistics
import sys
import time
from pathlib import Path

from absl import flags

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's gpt_jax, installed or not
import preflight  # noqa: E402  (benchmarks/, this script's folder)

from gpt_jax import cli  # noqa: E402
from gpt_jax.errors import UserError  # noqa: E402
from gpt_jax.run_files import write_atomic  # noqa: E402

flags.DEFINE_string("workdir", None, "A trained seq2seq run (default: an untrained model).")
flags.DEFINE_multi_integer("batch", [1, 8, 32, 64, 256, 1024], "Sources decoded at once.",
                           lower_bound=1)
flags.DEFINE_integer("repeats", 15, "Timed turns (each path once a turn), after one "
                     "compiling run.", lower_bound=1)
flags.DEFINE_string("out", str(REPO / "benchmarks" / "results" / "translation.json"), "JSON.")


def _alternated_seconds(fns: dict, repeats: int) -> dict:
    """Each fn's median time and all its times, the fns run in turn (after one compiling run
    each), so that a change in the machine's load falls on all of them alike."""
    import jax

    for fn in fns.values():
        jax.block_until_ready(fn())  # compiles
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}, times


UNCACHED = {"uncached": "YNNPACK", "uncached_xla": "XLA's kernels"}  # the decoder's two ways


def fastest_uncached(seconds: dict[str, float]) -> str:
    """The uncached path of the lower median time: the speed-ups' baseline."""
    return min(UNCACHED, key=seconds.__getitem__)


def main(argv):
    del argv
    import jax
    import numpy as np

    from gpt_jax import memory
    from gpt_jax.config import load_config_file
    from gpt_jax.optim import make_optimizer
    from gpt_jax.pairs_task import PairsTask
    from gpt_jax.restore import load_run
    from gpt_jax.state import init_state
    from gpt_jax.translation import write_target

    F = flags.FLAGS
    out = preflight.writable_file(F.out)
    if F.workdir:
        run = load_run(F.workdir)
        if run.config.model.name != "encoder_decoder":
            raise UserError(f"--workdir={F.workdir} is a run of the {run.config.model.name} "
                            f"model; this benchmark times the encoder–decoder's decoding: pass "
                            f"a run of configs/seq2seq.py")
        config, params, model = run.config, run.params, run.model
    else:
        config = load_config_file(str(REPO / "configs" / "seq2seq.py"))
    task = PairsTask.load(config)
    if F.workdir:  # the sources in the run's own vocabulary (its data may have changed since)
        task = task.with_vocab(run.tokenizer)
    else:
        model = task.build_model()
        params = init_state(model, make_optimizer(config.train), 0, task.example_inputs()).params
    memory.require_fits(memory.sampling_bytes(config, task.vocab_size, max(F.batch), 0,
                                              fewer="lower --batch"), "decoding")
    # Both paths read the same encoded sources: the encoder runs once in either, so it is timed
    # apart and the comparison is of the decoding.
    fused = model.clone(config=dataclasses.replace(model.config, fused_decode=True))
    head_by_head = model.clone(config=dataclasses.replace(model.config, fused_decode=False))
    encode = jax.jit(lambda p, s: model.apply({"params": p}, s, method=model.encode))
    rows = []
    for batch in F.batch:
        sources = task.val.source_NxS[np.arange(batch) % len(task.val)]
        encoded = encode(params, sources)
        mask = sources != 0
        # (name, model, use_cache, library_products); None: the path's own choice (XLA's
        # kernels for the cached decoding, YNNPACK for the uncached: each the faster for it).
        paths = (("uncached", model, False, None), ("cached", fused, True, None),
                 ("cached_head_by_head", head_by_head, True, None),
                 ("cached_ynnpack", fused, True, True), ("uncached_xla", model, False, False))
        fns = {name: functools.partial(write_target, m, params, encoded, mask, steps=task.T,
                                       use_cache=use_cache, library_products=library)
               for name, m, use_cache, library in paths}
        fns["encoder"] = functools.partial(encode, params, sources)
        seconds, times = _alternated_seconds(fns, F.repeats)
        tokens = batch * task.T
        source_tokens = sources.shape[1]  # padded: the length the encoder runs on
        base = fastest_uncached(seconds)
        row = {"config": "seq2seq.py", "trained": bool(F.workdir), "batch": batch,
               "target_tokens": task.T, "source_tokens": source_tokens,
               **{f"{k}_s": v for k, v in seconds.items()},
               **{f"{k}_tokens_per_s": tokens / v for k, v in seconds.items() if k != "encoder"},
               "encoder_source_tokens_per_s": batch * source_tokens / seconds["encoder"],
               "speedup_over": base,
               "device": str(jax.devices()[0].device_kind), "jax": jax.__version__}
        said = []
        for name, key in (("cached", "speedup"), ("cached_head_by_head", "head_by_head"),
                          ("cached_ynnpack", "ynnpack")):
            ratios = [u / c for u, c in zip(times[base], times[name], strict=True)]
            row[key], row[f"{key}_min_max"] = statistics.median(ratios), [min(ratios),
                                                                           max(ratios)]
            said.append(f"{name.replace('_', ' ')} {seconds[name] * 1e3:.1f} ms: "
                        f"{row[key]:.1f}× ({min(ratios):.1f}–{max(ratios):.1f})")
        ways = ", ".join(f"{way} {seconds[name] * 1e3:.1f} ms" for name, way in UNCACHED.items())
        print(f"{batch} sources × {task.T} tokens, against the uncached decoder's faster way "
              f"({ways}): {'; '.join(said)} (medians of {F.repeats} turns; the encoder, run "
              f"once by each: {seconds['encoder'] * 1e3:.1f} ms)")
        rows.append(row)
    write_atomic(out, json.dumps(rows, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    cli.run_main(main, __doc__, out_of_memory="out of memory: lower --batch")
