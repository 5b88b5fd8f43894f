#!/bin/bash
# The checks that need an accelerator, in one script, for a short lease of one GPU:
#   1. the scaled GPT trained to its 5,000 steps (val loss against the lecture's 1.48),
#   2. bench.py on both scaled configs in float32,
#   3. the scaled :modern GPT to its 5,000 steps,
#   4. bench.py in bfloat16, then side by side with nanoGPT (compiled, bfloat16) if
#      NANOGPT=/path/to/nanoGPT (data/shakespeare_char prepared) is given.
# Each stage has a time limit (a stopped run keeps its checkpoint: the same command resumes);
# logs, metrics and bench JSON go to OUT. Needs jax for the accelerator and this project's
# dependencies installed. Figures of one H200: benchmarks/README.md, "On an NVIDIA H200".
#
#   OUT=/tmp/out bash benchmarks/accelerator_check.sh
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/accelerator_check}; PY=${PY:-python3}; RUNS=${RUNS:-/tmp/accelerator_runs}
mkdir -p "$OUT" "$RUNS"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false GPT_JAX_CACHE_DIR=off
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null | tee "$OUT/env.txt"
$PY -c "import jax; print('jax', jax.__version__, jax.devices())" | tee -a "$OUT/env.txt"
# Minutes of a lease are too dear to spend training the scaled GPT on a CPU by mistake (a jax
# without CUDA, or no GPU visible): stop at once, in one line.
if ! $PY -c "import jax, sys; sys.exit(jax.default_backend() != 'gpu')" 2>/dev/null; then
  echo "error: this script needs a GPU and $PY's jax sees none (backend:" \
    "$($PY -c 'import jax; print(jax.default_backend())' 2>/dev/null || echo 'no jax'))" >&2
  exit 2
fi

train() {  # train NAME CONFIG SECONDS
  local start=$SECONDS
  timeout "$3" $PY train.py --config="$2" --workdir="$RUNS/$1" > "$OUT/$1.log" 2>&1
  echo "$1: exit $? after $((SECONDS - start)) s"
  grep -E "ready in|lowest val loss" "$OUT/$1.log"; grep -E "val loss" "$OUT/$1.log" | tail -1
  cp "$RUNS/$1/metrics.jsonl" "$OUT/$1_metrics.jsonl" 2>/dev/null
}
bench() {  # bench NAME SECONDS ARGS...
  local name=$1 seconds=$2; shift 2
  timeout "$seconds" $PY benchmarks/bench.py --configs=shakespeare_char.py \
    --configs=shakespeare_char.py:modern --sampling=false --out="$OUT/$name.json" "$@" \
    > "$OUT/$name.log" 2>&1
  echo "$name: exit $?"; grep -A4 '^| config' "$OUT/$name.log"
}

train gpt configs/shakespeare_char.py "${GPT_SECONDS:-290}"
# The best checkpoint restores and samples; the progress lines' rates stay near the records'.
timeout 60 $PY -m gpt_jax.sample --workdir="$RUNS/gpt" --best --max_new_tokens=200 \
  > "$OUT/gpt_sample.txt" 2>&1; echo "sample --best: exit $?"; tail -1 "$OUT/gpt_sample.txt"
grep -oE "[0-9,]+ tokens/s" "$OUT/gpt.log" | tr -d , | sort -n | sed -n '1p;$p' | tr '\n' ' '
echo "(lowest and highest tokens/s printed)"
bench bench_fp32 "${BENCH_SECONDS:-150}"
train modern configs/shakespeare_char.py:modern "${MODERN_SECONDS:-240}"
bench bench_bf16 "${BENCH_SECONDS:-150}" --set=model.compute_dtype=bfloat16
if [ -n "${NANOGPT:-}" ]; then
  timeout "${BENCH_SECONDS:-150}" $PY benchmarks/bench.py --configs=shakespeare_char.py \
    --sampling=false --set=model.compute_dtype=bfloat16 --nanogpt="$NANOGPT" \
    --nanogpt_python="$(command -v $PY)" --nanogpt_device=cuda --out="$OUT/bench_nanogpt.json" \
    > "$OUT/bench_nanogpt.log" 2>&1
  echo "bench_nanogpt: exit $?"; grep -A3 '^| config' "$OUT/bench_nanogpt.log"
fi
