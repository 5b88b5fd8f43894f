"""Where a train step's time goes: a jax.profiler trace of a few steps, summed by XLA op.

    python benchmarks/profile_step.py [--config=shakespeare_char.py --override=train.batch_size=16]

Prints the ops with the most time per step (fusions grouped by kind, then the single
largest ones; run with XLA_FLAGS=--xla_dump_to=DIR to look their HLO up) and leaves the trace in
--trace_dir for TensorBoard's profile plugin. Op time is summed over XLA's worker threads, so
it can exceed the wall time of a step.
"""

from __future__ import annotations

import collections
import gzip
import json
import re
import sys
from pathlib import Path

from absl import flags

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]  # this checkout's gpt_jax, installed or not
import preflight  # noqa: E402  (benchmarks/, put on the path above)

from gpt_jax import cli  # noqa: E402
from gpt_jax.config import parse_settings  # noqa: E402
from gpt_jax.errors import UserError  # noqa: E402

flags.DEFINE_string("config", "shakespeare_char.py", "Config file under configs/.")
flags.DEFINE_multi_string("override", [], "field=value, as --config.field=value in train.py.")
flags.DEFINE_integer("calls", 2, "Train-chunk calls to trace, after 2 untraced ones.",
                     lower_bound=1)
flags.DEFINE_integer("top", 25, "Rows to print.", lower_bound=1)
flags.DEFINE_string("trace_dir", "/tmp/gpt_jax_profile", "Where the trace is written.")


# The runtime's own spans, not XLA ops: its executor and thread pool, and its waits for
# threads or for the other devices (a rendezvous).
NOT_OPS = ("ThunkExecutor::Execute", "ThreadpoolListener::", "end: ", "Wait", "SlinkyThreadPool")


def trace_files(trace_dir: str) -> set[Path]:
    # (pathlib reads trace_dir as it is: glob.glob would take [...] in it for a pattern)
    return set(Path(trace_dir).glob("plugins/profile/*/*.trace.json.gz"))


def op_times(trace_dir: str, earlier: set[Path] = frozenset()) -> collections.Counter:
    """Microseconds per XLA op name, from the chrome-trace file jax wrote now (not one of
    `earlier`, the files there before: their folders are named by the local time, which a
    time zone or a clock can put after the new one's): the ops on XLA:CPU's worker threads
    (Eigen), or, for a program too small to be handed to them, the innermost ops on the
    thread that called it (a while loop's span holds its body's ops)."""
    new = sorted(trace_files(trace_dir) - earlier, key=lambda f: f.stat().st_mtime)
    if not new:
        raise UserError(f"jax wrote no trace under {trace_dir}/plugins/profile")
    path = new[-1]
    events = json.load(gzip.open(path))["traceEvents"]
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
               if e.get("ph") == "M" and e.get("name") == "thread_name"}
    ops = [e for e in events if e.get("ph") == "X" and not e["name"].startswith(NOT_OPS)]
    on_workers = [e for e in ops if "Eigen" in threads.get((e["pid"], e["tid"]), "")]
    callers = collections.defaultdict(list)
    for e in ops:
        if "XLAPjRtCpuClient" in threads.get((e["pid"], e["tid"]), ""):
            callers[e["pid"], e["tid"]].append(e)
    times = collections.Counter()
    for e in on_workers or [e for thread in callers.values() for e in _innermost(thread)]:
        times[e["name"]] += e["dur"]
    if not times:
        raise UserError(f"the trace {path} holds no XLA op on XLA:CPU's threads: nothing to "
                        f"report (is this a CPU run?)")
    return times


def _innermost(events: list[dict]) -> list[dict]:
    """The events of one thread that hold no other event within them."""
    events = sorted(events, key=lambda e: (e["ts"], -e["dur"]))
    return [e for e, after in zip(events, [*events[1:], None], strict=True)
            if after is None or after["ts"] >= e["ts"] + e["dur"]]


def main(argv):
    del argv
    import jax
    from bench import training_setup

    from gpt_jax.host_memory import keep_freed_memory

    keep_freed_memory()  # as train.py does

    F = flags.FLAGS
    preflight.config_file(F.config, "--config")
    preflight.writable_folder(F.trace_dir, "--trace_dir")
    setup = training_setup(F.config, parse_settings(F.override, "--override"))
    state, k = setup["state"], setup["k"]
    compiled = setup["compile"](state)  # with the trainer's compiler options
    earlier = trace_files(F.trace_dir)
    for call in range(2 + F.calls):
        if call == 2:
            jax.profiler.start_trace(F.trace_dir)
        state, metrics = setup["run"](state, call * k, compiled)
        jax.block_until_ready(metrics)
    jax.profiler.stop_trace()

    per_op = op_times(F.trace_dir, earlier)
    steps = F.calls * k
    by_kind = collections.Counter()
    for name, us in per_op.items():
        by_kind[re.sub(r"\.\d+$", "", name)] += us
    print(f"op time per step, summed over threads: {sum(per_op.values()) / 1e3 / steps:.1f} ms")
    print("by kind:")
    for kind, us in by_kind.most_common(F.top):
        print(f"  {us / 1e3 / steps:9.2f} ms  {kind}")
    print("largest single ops:")
    for name, us in per_op.most_common(F.top):
        print(f"  {us / 1e3 / steps:9.2f} ms  {name}")


if __name__ == "__main__":
    cli.run_main(main, __doc__)
