"""Corpora larger than memory: preparing a 2 GB corpus, training from its memory-mapped token
files against the in-memory path, and BPE against characters in bits per character.

    python benchmarks/data_at_scale.py [--scratch=/tmp/gpt_jax_scale] [--gigabytes=2]

1. Writes a corpus of --gigabytes by shuffling the lines of tiny Shakespeare (seeded), unless
   it is there; prepares it with characters (`python -m gpt_jax.prepare`) and a slice of it
   of at most 200 MB with BPE: wall time, MB/s and peak RSS of each.
2. Trains the CPU GPT --steps steps from the prepared folder (the device budget set to 0:
   each chunk's windows read from the memory map, whatever the corpus's size) and from tiny
   Shakespeare's text (the stream on the device), alternating: tokens/s and peak RSS of each.
3. Trains the CPU GPT on tiny Shakespeare with a BPE vocabulary for the wall time of the
   character run's 2,000 steps, and reports both val losses in bits per character.
Results land in benchmarks/results/data_at_scale.json. Nothing is written into the repository
but that file; the corpus and runs stay in --scratch.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from absl import flags

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's gpt_jax, installed or not
import children  # noqa: E402  (benchmarks/, this script's folder)
import preflight  # noqa: E402

from gpt_jax import cli  # noqa: E402
from gpt_jax.config import (  # noqa: E402
    apply_overrides,
    load_config_file,
    override_flags,
    validate,
)
from gpt_jax.errors import UserError  # noqa: E402
from gpt_jax.prepare import MAX_BPE_VOCAB  # noqa: E402
from gpt_jax.run_files import write_atomic  # noqa: E402

SHAKESPEARE = REPO / "gpt_jax" / "data" / "tinyshakespeare.txt"

flags.DEFINE_string("scratch", "/tmp/gpt_jax_scale", "Folder for the corpus, data and runs.")
flags.DEFINE_float("gigabytes", 2.0, "Size of the generated corpus.")
flags.DEFINE_integer("steps", 500, "Train steps of each timed run, at least 2: the first "
                     "compiles, and only the steps after it are timed.", lower_bound=2)
flags.DEFINE_integer("repeats", 2, "Alternated pairs of timed runs.", lower_bound=1)
flags.DEFINE_integer("bpe_vocab", 512, "BPE vocabulary for the bits-per-character run.",
                     lower_bound=256, upper_bound=MAX_BPE_VOCAB)  # refused now, not after minutes
flags.DEFINE_string("out", str(REPO / "benchmarks" / "results" / "data_at_scale.json"), "JSON.")


TIME = "/usr/bin/time"  # GNU time, whose -v report gives a command's peak RSS
SCRATCH_MARK = ".gpt_jax_data_at_scale"  # in a --scratch folder that this benchmark owns
PEAK_RSS = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")
# What /usr/bin/time says of a command that failed, before its report: not the command's words.
TIME_STATUS_LINES = ("Command exited with non-zero status", "Command terminated by signal")


def require_gnu_time() -> None:
    """A missing /usr/bin/time, or one without GNU's -v report (BSD's, busybox's), is found
    before any work, not as a traceback after the corpus is written."""
    install = "peak RSS is read from GNU time's -v report: install GNU time (apt-get install time)"
    try:
        proc = subprocess.run([TIME, "-v", "true"], capture_output=True, text=True)
    except OSError as e:
        raise UserError(f"cannot run {TIME}: {e.strerror}; {install}") from None
    if not PEAK_RSS.search(proc.stderr):
        raise UserError(f"{TIME} -v reports no 'Maximum resident set size'; {install}")


def timed(args: list[str], cwd: Path = REPO) -> dict:
    """Runs `python ARGS` under /usr/bin/time: wall seconds, peak RSS, its stdout."""
    start = time.perf_counter()
    proc = children.run([TIME, "-v", sys.executable, *args], cwd=cwd)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:  # its own last line, before /usr/bin/time's report
        said = [line for line in
                proc.stderr.split("\tCommand being timed:")[0].strip().splitlines()
                if not line.startswith(TIME_STATUS_LINES)]
        raise UserError(f"python {' '.join(args[:2])} failed: "
                        f"{said[-1] if said else 'no output'}")
    rss_kb = int(PEAK_RSS.search(proc.stderr).group(1))
    return {"seconds": seconds, "peak_rss_mb": rss_kb / 1024, "stdout": proc.stdout}


def make_corpus(path: Path, gigabytes: float) -> int:
    """Shuffled copies of tiny Shakespeare's lines until the file holds `gigabytes`; a corpus
    already there is reused only if it is the one this size writes (it ends within one copy
    past the target), never one of another --gigabytes."""
    target = int(gigabytes * 1e9)
    text = SHAKESPEARE.read_text(encoding="utf-8")
    if path.exists() and target <= path.stat().st_size < target + len(text.encode("utf-8")):
        return path.stat().st_size
    lines = text.splitlines(keepends=True)
    rng = random.Random(0)
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < target:
            rng.shuffle(lines)
            chunk = "".join(lines)
            f.write(chunk)
            written += len(chunk.encode("utf-8"))
    return written


def tokens_per_s(workdir: Path) -> float:
    """A run's tokens/s over all its timed steps: each evaluation interval weighted by its
    time, never a plain mean of their rates."""
    from gpt_jax.metrics import read_metrics, steady_tokens_per_s

    return steady_tokens_per_s(read_metrics(workdir))


def main(argv):
    del argv
    F = flags.FLAGS
    if not 0 < F.gigabytes < math.inf:
        raise UserError(f"--gigabytes must be a positive number, got {F.gigabytes}")
    one_copy = SHAKESPEARE.stat().st_size / 1e9
    if F.gigabytes < one_copy:  # below a byte it wrote an empty corpus, which prepare refused
        raise UserError(f"--gigabytes={F.gigabytes:g}: the corpus is whole copies of tiny "
                        f"Shakespeare ({one_copy * 1e3:.1f} MB): give at least "
                        f"{math.ceil(one_copy * 1e4) / 1e4:g}")
    # the timed runs' config, checked before the corpus is written (--steps=10**12 was
    # refused by train.py after minutes of preparing)
    train_settings = {"train.num_steps": F.steps, "train.eval_interval": F.steps,
                      "train.eval_iters": 5, "sample.max_new_tokens": 0}
    config = load_config_file(str(REPO / "configs" / "shakespeare_char_cpu.py"))
    apply_overrides(config, train_settings)
    validate(config)
    require_gnu_time()
    out = preflight.writable_file(F.out)
    scratch = own_scratch(preflight.writable_folder(F.scratch, "--scratch"))
    require_disk_space(scratch, F.gigabytes)
    result = {"cpu": _cpu()}
    corpus = scratch / "corpus.txt"
    size = make_corpus(corpus, F.gigabytes)
    mb = size / 1e6
    sliced = _slice(corpus, scratch, 200)  # at most 200 MB: less when the corpus is smaller
    for name, args, mbytes in (
            ("char", [f"--input={corpus}", f"--out={scratch / 'char'}"], mb),
            ("bpe_slice", [f"--input={sliced}", f"--out={scratch / 'bpe'}", "--tokenizer=bpe",
                           f"--vocab_size={F.bpe_vocab}"], sliced.stat().st_size / 1e6)):
        dataset = Path(args[1].split("=", 1)[1])
        if (dataset / "meta.json").exists():
            subprocess.run(["rm", "-rf", str(dataset)], check=True)
        run = timed(["-m", "gpt_jax.prepare", *args])
        result[f"prepare_{name}"] = {"megabytes": mbytes, "seconds": run["seconds"],
                                     "mb_per_s": mbytes / run["seconds"],
                                     "peak_rss_mb": run["peak_rss_mb"]}
        print(f"prepare {name}: {mbytes:,.0f} MB in {run['seconds']:.1f} s "
              f"({mbytes / run['seconds']:.1f} MB/s), peak RSS {run['peak_rss_mb']:,.0f} MB",
              flush=True)

    common = ["train.py", "--config=configs/shakespeare_char_cpu.py",
              *override_flags(train_settings)]
    # read from the memory map whatever its size (a small corpus would fit on the device)
    paths = {"memmap": [f"--config.data.path={scratch / 'char'}",
                            "--config.data.on_device_budget_mb=0"], "in_memory": []}
    runs = {name: [] for name in paths}
    for repeat in range(F.repeats):  # alternated, so that drift of the machine hits both
        for name, extra in paths.items():
            workdir = scratch / "runs" / f"{name}_{repeat}"
            subprocess.run(["rm", "-rf", str(workdir)], check=True)
            run = timed([*common, f"--workdir={workdir}", *extra])
            runs[name].append({"tokens_per_s": tokens_per_s(workdir),
                               "peak_rss_mb": run["peak_rss_mb"]})
            print(f"train {name} #{repeat}: {runs[name][-1]['tokens_per_s']:,.0f} tokens/s, "
                  f"peak RSS {run['peak_rss_mb']:,.0f} MB", flush=True)
    for name, rows in runs.items():
        # the runs' tokens over their time: each run trains the same steps, so the harmonic
        # mean of their rates, not the plain mean, which a fast run pulls up
        result[f"train_{name}"] = {"runs": rows,
                                   "tokens_per_s": len(rows) / sum(1 / r["tokens_per_s"]
                                                                   for r in rows),
                                   "peak_rss_mb": max(r["peak_rss_mb"] for r in rows)}
    result["memmap_over_in_memory"] = (result["train_memmap"]["tokens_per_s"]
                                       / result["train_in_memory"]["tokens_per_s"])
    result["bits_per_char"] = bits_per_char(scratch, F.bpe_vocab)
    write_atomic(out, json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


def own_scratch(scratch: Path) -> Path:
    """`scratch`, marked as this benchmark's: it rewrites corpus.txt and removes the datasets
    and runs it made there, so a folder that holds anything else is refused, not emptied."""
    mark = scratch / SCRATCH_MARK
    if not mark.exists():
        if any(scratch.iterdir()):
            raise UserError(f"--scratch={scratch} holds files this benchmark did not write (it "
                            f"rewrites corpus.txt and removes the datasets and runs it made "
                            f"there): give a new or empty folder")
        mark.write_text("gpt_jax's benchmarks/data_at_scale.py writes and removes files here\n")
    return scratch


def require_disk_space(scratch: Path, gigabytes: float) -> None:
    """The corpus and its prepared characters (a byte each) take about 2 × --gigabytes in
    --scratch, less what they replace there: too little is found now, not after an hour."""
    replaced = sum(f.stat().st_size for f in [scratch / "corpus.txt",
                                              *(scratch / "char").rglob("*")] if f.is_file())
    free = shutil.disk_usage(scratch).free + replaced
    if 2 * gigabytes * 1e9 > free:
        raise UserError(f"--gigabytes={gigabytes:g}: the corpus and its prepared tokens need "
                        f"about {2 * gigabytes:,.1f} GB in --scratch={scratch}, which has "
                        f"{free / 1e9:,.1f} GB for them")


def bits_per_char(scratch: Path, vocab: int) -> dict:
    """The CPU GPT on characters for its 2,000 steps, and on BPE for the same wall time; each
    val loss in bits per character (nats per token · tokens per character / ln 2)."""
    from gpt_jax.token_files import open_prepared

    data = scratch / f"shakespeare_bpe{vocab}"
    if not (data / "meta.json").exists():
        timed(["-m", "gpt_jax.prepare", f"--input={SHAKESPEARE}", f"--out={data}",
               "--tokenizer=bpe", f"--vocab_size={vocab}"])
    prepared = open_prepared(data)
    val_chars = len(prepared.tokenizer.decode(prepared.val))
    chars_per_token = val_chars / len(prepared.val)
    out = {}
    char_run = scratch / "runs" / "bpc_char"
    subprocess.run(["rm", "-rf", str(char_run)], check=True)
    char = timed(["train.py", "--config=configs/shakespeare_char_cpu.py",
                  f"--workdir={char_run}", "--config.sample.max_new_tokens=0"])
    char_val = json.loads((char_run / "metrics.jsonl").read_text().splitlines()[-1])["val_loss"]
    out["char"] = {"seconds": char["seconds"], "val_loss_nats_per_token": char_val,
                   "bits_per_char": char_val / math.log(2)}
    # The same model, batch and block on either vocabulary: the BPE run gets the steps that
    # take the character run's training time, from both runs' own tokens/s.
    bpe_run = scratch / "runs" / "bpc_bpe"
    probe = bpe_run.with_name("bpc_bpe_probe")
    subprocess.run(["rm", "-rf", str(bpe_run), str(probe)], check=True)
    timed(["train.py", "--config=configs/shakespeare_char_cpu.py", f"--workdir={probe}",
           f"--config.data.path={data}", "--config.train.num_steps=300",
           "--config.train.eval_interval=300", "--config.sample.max_new_tokens=0"])
    steps = round(2000 * tokens_per_s(probe) / tokens_per_s(char_run))
    bpe = timed(["train.py", "--config=configs/shakespeare_char_cpu.py", f"--workdir={bpe_run}",
                 f"--config.data.path={data}", f"--config.train.num_steps={steps}",
                 "--config.sample.max_new_tokens=0"])
    bpe_val = json.loads((bpe_run / "metrics.jsonl").read_text().splitlines()[-1])["val_loss"]
    out["bpe"] = {"vocab": vocab, "steps": steps, "seconds": bpe["seconds"],
                  "chars_per_token": chars_per_token, "val_loss_nats_per_token": bpe_val,
                  "bits_per_char": bpe_val / chars_per_token / math.log(2)}
    print(f"bits per character: char {out['char']['bits_per_char']:.3f} "
          f"({char['seconds']:.0f} s), bpe-{vocab} {out['bpe']['bits_per_char']:.3f} "
          f"({steps} steps, {bpe['seconds']:.0f} s)", flush=True)
    return out


def _slice(corpus: Path, scratch: Path, megabytes: int) -> Path:
    """The corpus's first `megabytes`, cut after a whole line; a file already there is reused
    only if it is that very slice (not an empty one, or one of a corpus of another size), and
    it is written whole or not at all."""
    path = scratch / f"corpus_{megabytes}mb.txt"
    with open(corpus, "rb") as f:
        data = f.read(megabytes * 10**6)
    data = data[: data.rfind(b"\n") + 1]
    if not (path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data):
        write_atomic(path, data)
    return path


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    cli.run_main(main, __doc__)
