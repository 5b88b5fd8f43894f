"""What a config needs in memory, estimated from its shapes before anything is allocated, so
that a config that cannot fit is refused with the figures instead of being killed by the OS.

The estimates count the arrays a step must hold at once, in float32, and were checked against
the peak memory of real runs on a CPU: a config refused here could not have run.
"""

from __future__ import annotations

import decimal
import math
import os
from pathlib import Path

import jax
import ml_collections

from gpt_jax import address_space
from gpt_jax.errors import UserError

GiB = 2**30
FLOAT = 4  # bytes of a float32 or an int32
STATE_FLOATS_PER_PARAM = 4  # the param, its gradient and Adam's two moments
# A generated token, all told: the (samples, prompt + new tokens) buffer that the generation
# loop carries and XLA copies, its copy on the host, and its decoded text. Measured: about
# 95 bytes a token over the sampler's own memory, for 200 samples of 20,000 tokens (and
# 200 × 1,000,000 was OOM-killed under 12 GiB, i.e. more than 57 a token); not the 20 that
# the buffer and the text alone would take.
SAMPLE_BYTES_PER_TOKEN = 100
# An n-gram's V^n parameters are counted exactly up to numbers of this many bits (10^19728,
# in milliseconds); a context near 2^31 would take hours to count, for a table no memory holds.
NGRAM_COUNT_BITS = 1 << 16


def available_memory() -> tuple[int, str]:
    """Bytes one replica of the training state may use, and a phrase saying whose they are:
    the accelerator's own memory, or else this machine's RAM shared by its local devices."""
    devices = jax.local_devices()
    stats = devices[0].memory_stats() or {}
    if "bytes_limit" in stats:
        return stats["bytes_limit"], f"each {devices[0].device_kind} has"
    ram = min(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), _cgroup_limit())
    left = address_space.left()
    if left is not None and left < ram:  # ulimit -v: what it leaves unreserved, at most
        ram, owner = left, f"{address_space.SETTING} leaves"
    else:
        owner = "this machine has"
    n = len(devices)
    if n == 1:
        return ram, owner
    if owner == "this machine has":
        return ram // n, f"each of the {n} devices sharing this machine's RAM has"
    return ram // n, f"{owner} each of its {n} devices"


def _cgroup_limit() -> int:
    """The memory limit of this process's cgroup (a container's, a SLURM job's), if any: the
    OS kills a process that passes it, however much RAM the machine has."""
    try:
        entries = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return 1 << 62
    limits = []
    for entry in entries:
        _, controllers, path = entry.split(":", 2)
        if controllers == "":  # cgroup v2: walk up from this process's group
            group = Path("/sys/fs/cgroup") / path.lstrip("/")
            for folder in (group, *group.parents):
                limits.append(_read_limit(folder / "memory.max"))
                if folder == Path("/sys/fs/cgroup"):
                    break
        elif "memory" in controllers.split(","):  # cgroup v1
            limits.append(_read_limit(Path("/sys/fs/cgroup/memory") / path.lstrip("/")
                                      / "memory.limit_in_bytes"))
    return min(limits, default=1 << 62)


def _read_limit(path: Path) -> int:
    try:
        text = path.read_text().strip()
    except OSError:
        return 1 << 62
    return int(text) if text.isdigit() else 1 << 62


def param_count(config: ml_collections.ConfigDict, vocab_size: int) -> int:
    """Parameters of the model a config builds, from shapes alone. The blocks of a GPT are
    alike, so its count is taken at 1 and 2 layers and extended: a config of a million layers
    is counted without tracing a million blocks."""
    from gpt_jax.state import count_params, param_shapes
    from gpt_jax.task import task_model

    m = config.model
    if m.name == "ngram":
        return _ngram_count(vocab_size, m.context + 1)
    if m.name == "mlp":  # tracing would concatenate the context's embeddings one by one
        E, H = m.n_embd, m.mlp_hidden
        return vocab_size * E + m.context * E * H + H + H * vocab_size + vocab_size

    def count(n_layer: int) -> int:
        layered = config.copy_and_resolve_references()
        layered.model.n_layer = n_layer
        return count_params(param_shapes(*task_model(layered, vocab_size)))

    if m.name not in ("gpt", "encoder_decoder") or m.n_layer <= 2:
        return count(m.n_layer)
    one, two = count(1), count(2)
    return one + (m.n_layer - 1) * (two - one)


def _ngram_count(V: int, n: int) -> int:
    """V^n, the parameters of an n-gram's table; one past NGRAM_COUNT_BITS is refused, its
    size in the message computed from logarithms."""
    if n * math.log2(V) <= NGRAM_COUNT_BITS:
        return V**n
    log10_gib = n * math.log10(V) + math.log10(FLOAT * STATE_FLOATS_PER_PARAM / GiB)
    exponent = math.floor(log10_gib)
    mantissa = round(10 ** (log10_gib - exponent), 1)
    if mantissa == 10:  # 9.96e5 is 1.0e6
        mantissa, exponent = 1.0, exponent + 1
    raise UserError(f"training this config needs about {mantissa}e{exponent} GiB of memory "
                    f"(an n-gram table of {V}^{n} parameters): lower model.context")


def activation_floats(model: ml_collections.ConfigDict, vocab_size: int, rows: int,
                      source_len: int = 0) -> int:
    """Floats a forward pass of `rows` sequences keeps for its backward pass: the residual
    stream's tensors of every layer, the (T, T) attention weights of every head, the logits;
    for the encoder–decoder also its encoder's, over sources of `source_len` tokens, and the
    cross-attention's (T, S) weights."""
    B, T, V = rows, model.block_size, vocab_size
    logits = 2 * B * T * V  # the logits and their gradient
    if model.name == "bigram":
        return logits
    if model.name == "ngram":
        return logits + B * T * (model.context + 1)
    if model.name == "mlp":
        return logits + B * T * (model.context * model.n_embd + 2 * model.mlp_hidden)
    C, H = model.n_embd, model.n_head
    hidden = 3 if model.activation == "swiglu" else 2  # SwiGLU's gate, value and product
    def block(L: int, maps: int = 2) -> int:  # self-attention and feed-forward over L tokens
        return B * L * C * (6 + hidden * model.ffn_mult) + maps * B * H * L * L

    if model.name != "encoder_decoder":
        return logits + B * T * C + model.n_layer * block(T)
    S = source_len
    # and a decoder block's cross-attention: its queries and output, the source's keys and
    # values, and the (T, S) weights of every head
    cross = B * T * C * 4 + 2 * B * S * C + 2 * B * H * T * S
    # The encoder's (S, S) maps counted three times: measured at sources of 600 tokens (batch
    # 64, 2 layers), the peak was 4.8 GiB; two would estimate 3.9 GiB with the runtime, three
    # estimate 5.3 GiB.
    return logits + B * (T + S) * C + model.n_layer * (block(S, maps=3) + block(T) + cross)


def training_bytes(config: ml_collections.ConfigDict, vocab_size: int, micro_batch: int,
                   eval_rows: int, train_tokens: int, windows_on_host: bool = False
                   ) -> dict[str, tuple[int, str]]:
    """The parts of one device's memory a training run needs: bytes, and the setting that
    shrinks each. `windows_on_host`: each call's windows are read on the host and sent with
    it (a train stream too large for the device), not only their offsets."""
    m, t = config.model, config.train
    params = param_count(config, vocab_size)
    steps_per_call = min(t.steps_per_call, t.num_steps)
    source_len = config.data.max_source_len if m.name == "encoder_decoder" else 0
    if source_len:  # it trains on its targets, whatever positions its table holds beyond them
        m = ml_collections.ConfigDict({**m.to_dict(), "block_size": min(
            m.block_size, config.data.max_target_len + 1)})
    shrink_batch = ("lower train.batch_size, data.max_source_len or data.max_target_len, or "
                    "raise train.grad_accum_steps") if source_len else (
        "lower train.batch_size, model.block_size or model.context, or raise "
        "train.grad_accum_steps") if m.name in ("mlp", "ngram") else (
        "lower train.batch_size or model.block_size, or raise train.grad_accum_steps")
    window = (f"sources of {source_len} and targets of {m.block_size} tokens" if source_len
              else f"{m.block_size} tokens")
    return {
        "parameters, gradients and Adam's moments": (
            FLOAT * STATE_FLOATS_PER_PARAM * params, "use a smaller model"),
        # The backward pass holds a gradient beside each stored activation: measured on the
        # CPU GPT at batches of 600 and 1,200, the peak was 2.2 times the forward's own.
        f"activations of {micro_batch} sequences of {window} and their gradients": (
            FLOAT * 2 * activation_floats(m, vocab_size, micro_batch, source_len), shrink_batch),
        f"{t.eval_iters} evaluation batches of both splits": (
            FLOAT * 2 * 2 * t.eval_iters * eval_rows * m.block_size, "lower train.eval_iters"),
        "the train token stream": (FLOAT * train_tokens, "use a smaller corpus"),
        # Each call's inputs, padded to steps_per_call steps: per row and step, measured with
        # 5,000,000 steps per call, 37 bytes for an offset (int64, then int32, then on the
        # device), and with 1,000,000, 35 bytes for each token of a window read on the host.
        f"the {'windows' if windows_on_host else 'batch offsets'} of {steps_per_call} steps "
        f"per call": (
            10 * FLOAT * steps_per_call * eval_rows * (m.block_size + 1 if windows_on_host
                                                       else 1), "lower train.steps_per_call"),
        **_runtime(),
    }


def sampling_bytes(config: ml_collections.ConfigDict, vocab_size: int, num_samples: int,
                   max_new_tokens: int, fewer: str | None = None
                   ) -> dict[str, tuple[int, str]]:
    """The parts of the memory that generating `num_samples` texts at once needs; `fewer`:
    the advice, in the flags of the command that asks (default: the sampler's)."""
    model = config.model
    params = param_count(config, vocab_size)
    T = model.block_size
    cache = 2 * model.n_layer * num_samples * T * model.n_embd \
        if model.name in ("gpt", "encoder_decoder") else 0
    fewer_samples = fewer or "lower --num_samples"
    if config.data.task == "pairs":  # a translation is as long as the task's targets
        max_new_tokens = config.data.max_target_len + 1
        fewer = fewer or "give fewer prompts or a lower --num_samples"
        # the encoder's output and, per layer, the cross-attention's keys and values
        cache += (1 + 2 * model.n_layer) * num_samples * config.data.max_source_len \
            * model.n_embd
    source_len = config.data.max_source_len if model.name == "encoder_decoder" else 0
    return {"parameters": (FLOAT * params, "this run cannot be sampled on this machine"),
            f"{num_samples} × {max_new_tokens} generated tokens, and their text": (
                SAMPLE_BYTES_PER_TOKEN * num_samples * (T + max_new_tokens),
                fewer or "lower --num_samples or --max_new_tokens"),
            "the key/value cache and the logits": (
                FLOAT * (cache + num_samples * vocab_size), fewer_samples),
            # The pass over the prompt's whole window that starts the cache (or, uncached,
            # each token's): XLA's own count of the sampler's buffers (memory_analysis) is
            # half a training pass's activations, for the CPU GPT of 1 layer 32 wide and of
            # 4 layers 128 wide, and the process's peak 1.0-1.5 times that. Counted at 1.2
            # times: at exactly half, 1,500 and 5,000 samples of the CPU GPT peaked 3% and
            # 7% above the whole estimate, and one under a 3 GiB limit was killed.
            f"the pass over {num_samples} prompt windows of {T} tokens": (
                FLOAT * activation_floats(model, vocab_size, num_samples, source_len) * 3 // 5,
                fewer_samples),
            **_runtime()}


def _runtime() -> dict[str, tuple[int, str]]:
    """The process itself (Python, jax, XLA's compiled programs), where it shares the
    devices' memory: on a CPU."""
    if jax.default_backend() != "cpu":
        return {}
    return {"the jax runtime": (GiB // 2, "close other programs")}


def require_fits(parts: dict[str, tuple[int, str]], what: str,
                 memory: tuple[int, str] | None = None) -> None:
    """Refuses, with the figures, a job whose estimate exceeds the memory; the advice is that
    of its largest part."""
    limit, owner = memory or available_memory()
    need = sum(size for size, _ in parts.values())
    if need <= limit:
        return
    largest = max(parts, key=lambda name: parts[name][0])
    size, advice = parts[largest]
    raise UserError(f"{what} needs about {_size(need)} of memory ({largest}: {_size(size)}); "
                    f"{owner} {_size(limit)}: {advice}")


def _size(n_bytes: int) -> str:
    if n_bytes >= 10**6 * GiB:  # Decimal: a count past a float's range still prints
        return f"{decimal.Decimal(n_bytes) / GiB:.1e} GiB".replace("e+", "e")
    if n_bytes >= GiB:
        return f"{n_bytes / GiB:,.1f} GiB"
    return f"{n_bytes / 2**20:,.0f} MiB"
