"""Training and sampling speed, against this machine's own matmul peak and, optionally,
karpathy/nanoGPT measured side by side in the same run.

    python benchmarks/bench.py [--nanogpt=/path/to/nanoGPT --nanogpt_python=/path/to/python]

Per config (the CPU GPT and the scaled GPT): compile time of the train step, steady-state
time per step (median and spread after warm-up), tokens/s, model FLOPs per token, MFU against
a jitted large matmul timed in the same run (times the devices the step runs on, one on a
CPU), sampling tokens/s with and without the KV cache.
Prints a table; writes JSON (--out). Nothing here is a test: figures depend on the machine.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

from absl import flags

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]  # this checkout's gpt_jax, installed or not
import nanogpt  # noqa: E402  (benchmarks/, put on the path above)
import preflight  # noqa: E402

from gpt_jax import cli  # noqa: E402
from gpt_jax.config import parse_settings  # noqa: E402
from gpt_jax.errors import UserError  # noqa: E402
from gpt_jax.run_files import write_atomic  # noqa: E402

flags.DEFINE_multi_string("configs", ["shakespeare_char_cpu.py", "shakespeare_char.py"],
                          "Config files under configs/.")
flags.DEFINE_integer("steps", 100, "Timed steps per config, after warm-up: ours run as the "
                     "trainer runs them, in whole calls of train.steps_per_call (10 in the "
                     "configs), so --steps is rounded up to a multiple of it; nanoGPT's are "
                     "exactly --steps (the scaled GPT takes about 14 s a step on 2 CPU cores, "
                     "ours and nanoGPT's together).", lower_bound=1)
flags.DEFINE_string("nanogpt", None, "A checkout of karpathy/nanoGPT with "
                    "data/shakespeare_char prepared, to time side by side (on one visible "
                    "device: CUDA_VISIBLE_DEVICES=0).")
flags.DEFINE_string("nanogpt_python", sys.executable, "A Python with torch, for nanoGPT.")
flags.DEFINE_enum("nanogpt_device", "cpu", ["cpu", "cuda"], "Where nanoGPT runs: cpu (eager, "
                  "float32) or cuda (torch.compile, its default bfloat16 autocast).")
flags.DEFINE_bool("sampling", True, "Also time sampling (cached and uncached).")
flags.DEFINE_string("out", str(REPO / "benchmarks" / "results" / "bench.json"), "JSON out.")


def model_flops_utilization(flops_per_token: float | None, tokens_per_s: float,
                            peak_per_device: float, devices: list) -> float | None:
    """The model's FLOP/s over the peak of every device it trains on: the step runs on all of
    them, and the peak was timed on one (a CPU's devices share its cores, so there one
    device's peak is the whole machine's)."""
    if flops_per_token is None:
        return None
    chips = 1 if devices[0].platform == "cpu" else len(devices)
    return flops_per_token * tokens_per_s / (peak_per_device * chips)


def matmul_peak_flops(dtype: str = "float32", repeats: int = 5) -> float:
    """FLOP/s of a jitted square matmul in `dtype`: the machine's practical peak for MFU.

    n = 4096 on a CPU, 8192 on an accelerator, where a 4096² product takes about a millisecond
    and one dispatch per timing made the figure vary 1.5× between runs; there each timing
    chains 10 products and blocks once."""
    import jax
    import jax.numpy as jnp

    on_cpu = jax.devices()[0].platform == "cpu"
    n, chain = (4096, 1) if on_cpu else (8192, 10)
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32).astype(dtype) / n**0.5
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(chain):
            out = f(a)
        out.block_until_ready()
        times.append((time.perf_counter() - start) / chain)
    return 2 * n**3 / statistics.median(times)


def flops_per_token(config, params) -> float | None:
    """6·N for the matmul parameters (a forward and a backward pass) plus the attention
    scores and their use, 12·n_layer·block_size·n_embd: nanoGPT's count, so MFUs compare.
    None for the models before the GPT (a bigram or n-gram table is a lookup, the MLP has no
    attention): the count is the GPT's, and an MFU made up for them would mean nothing."""
    from gpt_jax.state import count_params

    m = config.model
    if m.name != "gpt":
        return None
    n = count_params(params) - count_params(params.get("position_embedding_table", {}))
    if not m.tie_embeddings:
        n -= count_params(params["token_embedding_table"])  # a lookup, not a matmul
    return 6 * n + 12 * m.n_layer * m.block_size * m.n_embd


# Settings that change how a step is computed on this CPU, never what it computes: the scaled
# GPT's batch of 64 as 4 accumulated micro-batches of 16, whose activations stay in the cache
# (measured here: 12 s a step as one batch, 8.6 s as four). Pass --cpu_overrides=false to
# time the configs exactly as written.
CPU_OVERRIDES = {"shakespeare_char.py": {"train.grad_accum_steps": 4}}
flags.DEFINE_bool("cpu_overrides", True, "On a CPU, apply CPU_OVERRIDES.")
flags.DEFINE_multi_string("set", [], "FIELD=VALUE for every config, as --config.FIELD=VALUE "
                          "(e.g. --set=model.compute_dtype=bfloat16); repeatable.")


# --set fields that change how a step is computed, not the model or its batches: nanoGPT
# still trains the same model side by side (compute_dtype: its own autocast on a GPU).
NANOGPT_NEUTRAL = {"model.compute_dtype", "model.query_chunk", "model.fused_dropout",
                   "train.grad_accum_steps", "train.steps_per_call", "train.cpu_library_products"}


def require_same_model_as_nanogpt(specs: list[str], settings: dict) -> None:
    """nanoGPT is run with the flags of the base config (nanogpt.MODEL_ARGS): a variant or a
    --set that changes the model would time two different models in one row."""
    for spec in specs:
        if ":" in spec or spec not in nanogpt.MODEL_ARGS:
            raise UserError(f"--nanogpt times nanoGPT on the same model: {spec} has no nanoGPT "
                            f"counterpart (choose from {', '.join(nanogpt.MODEL_ARGS)})")
    changed = sorted(set(settings) - NANOGPT_NEUTRAL)
    if changed:
        raise UserError(f"--nanogpt times nanoGPT on the same model: --set={changed[0]} would "
                        f"change ours only")


def training_config(spec: str, overrides: dict) -> tuple:
    """The config of `spec` with `overrides`, validated, its task and batch layout; as the
    trainer does, a config that cannot fit is one line, not a hang or the OOM killer."""
    from gpt_jax import memory
    from gpt_jax.config import apply_overrides, load_config_file, validate
    from gpt_jax.layout import BatchLayout
    from gpt_jax.task import load_task

    config = load_config_file(str(REPO / "configs" / spec))
    apply_overrides(config, overrides)
    validate(config)
    t = config.train
    task = load_task(config)
    layout = BatchLayout.current(t.batch_size, t.grad_accum_steps)
    memory.require_fits(task.memory_parts(layout), f"training {spec}")
    return config, task, layout


def training_setup(spec: str, overrides: dict) -> dict:
    """The config's train chunk, replicated state and token stream, ready to call:
    `run(state, step)` runs `k` steps from `step` and returns (state, metrics)."""
    import jax
    import numpy as np

    from gpt_jax.optim import make_optimizer
    from gpt_jax.state import init_state
    from gpt_jax.steps import make_train_chunk, replicate, seed_key_data, shard
    from gpt_jax.xla_options import compiler_options

    config, task, layout = training_config(spec, overrides)
    t, m = config.train, config.model
    model = task.build_model()
    optimizer = make_optimizer(t)
    state = init_state(model, optimizer, t.seed, task.example_inputs())
    # Steps per call as the trainer runs them: each call also pays for mapping its temporary
    # buffers afresh where the allocator will not keep them (see gpt_jax/host_memory.py).
    k = t.steps_per_call
    # Warm-up calls: the first tens of steps run slower (allocation); one call of a slow step
    # is tens of them already.
    warmup = 1 if m.block_size * t.batch_size >= 8192 else 3
    chunk = make_train_chunk(model, optimizer, task)
    seed_data = seed_key_data(t.seed)
    tokens = replicate(task.device_data())
    no_stop = shard(np.zeros((jax.local_device_count(), 2), np.int32))  # (signal, -wish)
    rows = shard(layout.row_ids())

    def starts(step):
        return task.chunk_inputs(layout, step, k, k)

    options = compiler_options(t.cpu_library_products)  # as the trainer compiles it

    # `run` calls `chunk`, which compiles at its first call, or the executable `compile` made.
    return {"config": config, "params": state.params, "state": replicate(state), "k": k,
            "warmup": warmup,
            "compile": lambda state: chunk.lower(state, tokens, starts(0), k, no_stop, rows,
                                                 seed_data).compile(compiler_options=options),
            "run": lambda state, step, fn=chunk: fn(state, tokens, starts(step), k, no_stop,
                                                    rows, seed_data)[:2]}


def time_training(spec: str, steps: int, overrides: dict) -> dict:
    """Compile time and per-step times of our train step on the config's real batches."""
    import jax

    setup = training_setup(spec, overrides)
    config, state, k = setup["config"], setup["state"], setup["k"]
    t, m = config.train, config.model
    start = time.perf_counter()
    compiled = setup["compile"](state)
    compile_s = time.perf_counter() - start
    per_step, step = [], 0
    warmup = setup["warmup"]
    for call in range(warmup + -(-steps // k)):
        start = time.perf_counter()
        state, metrics = setup["run"](state, step, compiled)
        jax.block_until_ready(metrics)
        if call >= warmup:
            per_step.append((time.perf_counter() - start) / k)
        step += k
    median = statistics.median(per_step)
    tokens_per_step = t.batch_size * m.block_size
    return {"config": spec, "overrides": overrides, "batch_size": t.batch_size,
            "grad_accum_steps": t.grad_accum_steps, "block_size": m.block_size,
            "compute_dtype": m.compute_dtype,
            "steps_timed": len(per_step) * k, "steps_per_call": k, "compile_s": compile_s,
            "step_ms_median": 1000 * median, "step_ms_min": 1000 * min(per_step),
            "step_ms_max": 1000 * max(per_step), "tokens_per_s": tokens_per_step / median,
            "flops_per_token": flops_per_token(config, setup["params"])}


def time_nanogpt(spec: str, steps: int) -> dict:
    """nanoGPT's own train.py (on the CPU eager, on a GPU compiled), with its own
    per-iteration timer."""
    F = flags.FLAGS
    warmup = 5  # nanoGPT itself skips 5 iterations before it estimates its MFU
    train = nanogpt.TRAIN_CUDA if F.nanogpt_device == "cuda" else nanogpt.TRAIN
    checkout, python = nanogpt.require_checkout(F.nanogpt, F.nanogpt_python)
    cmd = [python, *train, "--eval_iters=1", "--log_interval=1",
           "--eval_interval=100000", f"--max_iters={warmup + steps}",
           *nanogpt.MODEL_ARGS[spec]]
    out = nanogpt.run(cmd, checkout)
    times = [float(ms) for ms in re.findall(r"^iter \d+: .*time ([\d.]+)ms", out, re.M)]
    timed = times[warmup + 1:]  # iteration 0 also pays for the first evaluation
    if not timed:
        raise UserError(f"train.py of --nanogpt={F.nanogpt} printed {len(times)} timing lines "
                        f"like 'iter 7: loss 2.1, time 35.2ms, mfu 1.2%', expected "
                        f"{warmup + 1 + steps}: is it karpathy/nanoGPT's?")
    median = statistics.median(timed)
    return {"step_ms_median": median, "step_ms_min": min(timed), "step_ms_max": max(timed),
            "steps_timed": len(timed)}


def main(argv):
    del argv
    F = flags.FLAGS
    import jax
    import jaxlib
    from sampling import SAMPLED_TOKENS, sampling_config, time_sampling

    from gpt_jax.host_memory import keep_freed_memory

    keep_freed_memory()  # as train.py does (gpt_jax/cli.py)
    out = preflight.writable_file(F.out)
    preflight.decoder_only_configs(F.configs)
    if F.nanogpt:
        nanogpt.require_checkout(F.nanogpt, F.nanogpt_python)
        require_same_model_as_nanogpt(F.configs, parse_settings(F.set))

    settings = parse_settings(F.set)
    on_cpu = jax.devices()[0].platform == "cpu"
    if F.nanogpt and jax.device_count() > 1:
        raise UserError(f"--nanogpt times nanoGPT on one device, and ours would train on all "
                        f"{jax.device_count()} of this machine: make one visible "
                        f"(CUDA_VISIBLE_DEVICES=0) for a side-by-side")
    plans = [(spec, {**(CPU_OVERRIDES.get(spec, {}) if F.cpu_overrides and on_cpu else {}),
                     **settings}) for spec in F.configs]
    for spec, overrides in plans:  # a --set the second config refuses loses no timed first
        training_config(spec, overrides)
        if F.sampling:
            sampling_config(spec, SAMPLED_TOKENS, settings)

    peaks = {}  # per compute dtype: a bfloat16 row's MFU is against the bfloat16 matmul
    rows = []
    for spec, overrides in plans:
        row = time_training(spec, F.steps, overrides)
        dtype = row["compute_dtype"]
        if dtype not in peaks:
            peaks[dtype] = matmul_peak_flops(dtype)
            print(f"{dtype} matmul peak (jitted square matmul): {peaks[dtype] / 1e9:.1f} "
                  f"GFLOP/s", flush=True)
        row["mfu"] = model_flops_utilization(row["flops_per_token"], row["tokens_per_s"],
                                             peaks[dtype], jax.devices())
        if F.sampling:
            row.update(time_sampling(spec, SAMPLED_TOKENS, overrides=settings))
        if F.nanogpt:
            nano = time_nanogpt(spec, F.steps)
            row["nanogpt"] = nano
            row["speedup_vs_nanogpt"] = nano["step_ms_median"] / row["step_ms_median"]
        rows.append(row)
        print(json.dumps(row), flush=True)

    header = ("| config | compile | step (median, min–max) | tokens/s | MFLOP/token | MFU "
              "| nanoGPT step | speed-up | sampling cached / uncached tokens/s |")
    lines = [header, "|" + "---|" * 9]
    for r in rows:
        nano = r.get("nanogpt")
        name = " ".join([r["config"], *(f"{k}={v}" for k, v in r["overrides"].items())])
        lines.append(
            f"| {name} | {r['compile_s']:.1f} s | {r['step_ms_median']:.1f} ms "
            f"({r['step_ms_min']:.1f}–{r['step_ms_max']:.1f}) | {r['tokens_per_s']:,.0f} | "
            + ("— | — | " if r["mfu"] is None
               else f"{r['flops_per_token'] / 1e6:.2f} | {100 * r['mfu']:.0f}% | ")
            + (f"{nano['step_ms_median']:.1f} ms | {r['speedup_vs_nanogpt']:.2f}× | "
               if nano else "— | — | ")
            + (f"{r['cached_tokens_per_s']:,.0f} / {r['uncached_tokens_per_s']:,.0f} |"
               if "cached_tokens_per_s" in r else "— |"))
    table = "\n".join(lines)
    env = {"device": jax.devices()[0].device_kind, "platform": jax.devices()[0].platform,
           "device_count": jax.device_count(), "jax": jax.__version__,
           "jaxlib": jaxlib.__version__, "xla_flags": os.environ.get("XLA_FLAGS", ""),
           "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
           "matmul_peak_gflops": {k: v / 1e9 for k, v in peaks.items()}}
    print(f"\n{table}\n\n{json.dumps(env)}")
    result = {"environment": env, "rows": rows, "table": table}
    write_atomic(out, json.dumps(result, indent=1))  # a full disk keeps the results there were
    print(f"written {out}")


if __name__ == "__main__":
    cli.run_main(main, __doc__)
