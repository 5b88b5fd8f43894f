"""The config schema: every field a run reads, with the lecture's small-model defaults.

Config files in `configs/` start from `base_config()` (locked: a mistyped field is an error,
not a new field) and change a few fields. `validate` turns impossible settings into one clear
UserError before anything compiles, whatever the config came from (a file, flags, config.json).
"""

from __future__ import annotations

import ast
import difflib
import math
import re
import struct
import sys
from pathlib import Path
from typing import Any

import ml_collections
from ml_collections.config_flags.config_flags import ConfigFileFlagParser

from gpt_jax.errors import UserError
from gpt_jax.user_files import not_there, user_path

# The names a config chooses between, and where each is built. They are here, not beside the
# code, so that loading and checking a config never imports jax: a typo is reported in a
# fraction of a second, not after the seconds that importing jax takes.
# The model fields that each of the lecture's small models reads (models/__init__.py), and
# those that the GPT and the encoder–decoder do not: a field a model does not read must stay at
# its default there, or the run would ignore it without a word.
SMALL_MODELS_READ = {"bigram": ("block_size",), "ngram": ("block_size", "context", "init"),
                     "mlp": ("block_size", "context", "n_embd", "mlp_hidden", "activation",
                             "init")}
NOT_READ = {"gpt": ("context", "mlp_hidden"),
            "encoder_decoder": ("pos_emb", "rope_base", "norm", "layer_norm", "residual",
                                "projections", "ffwd", "logit_softcap", "query_chunk", "context",
                                "mlp_hidden")}
MODEL_NAMES = ("bigram", "ngram", "mlp", "gpt", "encoder_decoder")  # models/__init__.py
TASKS = ("text", "pairs")  # task.py
POS_EMBS = ("learned", "rope", "none")  # models/gpt.py, models/rope.py
NORMS = ("layernorm", "rmsnorm")  # models/block.py: norm()
ACTIVATIONS = ("relu", "gelu", "tanh", "relu2", "swiglu")  # models/feedforward.py
STYLES = ("gpt2", "torch")  # models/init.py: the initializations
OPTIMIZERS = ("adamw", "muon")  # optim.py


def base_config() -> ml_collections.ConfigDict:
    """The lecture's settings for its small models (batch 32, block 8, width 32, lr 1e-3)."""
    config = ml_collections.ConfigDict()
    config.description = ""  # what this config adds, one line
    config.reference_val_loss = 0.0  # the lecture's / nanoGPT's figure for this config

    config.model = ml_collections.ConfigDict(dict(
        name="gpt",  # one of MODEL_NAMES
        block_size=8,  # context length T (encoder_decoder: data.max_target_len + 1)
        n_embd=32,  # also the mlp's embedding size per character
        context=3,  # ngram and mlp: previous characters seen (an n-gram has n = context + 1)
        mlp_hidden=128,  # mlp: width of its hidden layer
        n_head=4,
        n_layer=1,
        pos_emb="learned",  # learned | rope (q, k rotated by position) | none (order-blind)
        rope_base=10000.0,  # rope: pair i of a head's channels turns by base^(-2i/D)
        ffwd=True,
        ffn_mult=4,
        activation="relu",  # relu | gelu | tanh | relu2 (ReLU²) | swiglu (gated, its hidden
        # width round(2/3·ffn_mult·n_embd): the parameters of the plain MLP)
        residual=True,
        projections=True,
        layer_norm=True,
        norm="layernorm",  # layernorm | rmsnorm: the kind of every norm layer_norm puts in
        qk_norm=False,  # RMSNorm on each head's queries and keys before their dot product
        bias=True,  # False: no bias in any Linear or LayerNorm
        zero_init_proj=False,  # attention's and the MLP's output projections start at zero
        # (with residual=True: without it no gradient would reach the blocks)
        logit_softcap=0.0,  # > 0: logits = cap·tanh(logits / cap); 0 is off
        dropout=0.0,
        fused_dropout=False,  # dropout masks hashed inside the fused code: faster on a CPU
        tie_embeddings=False,  # the LM head reuses the token embedding (encoder_decoder: one
        # table for source, target and LM head)
        init="gpt2",  # gpt2 | torch: see gpt_jax/models/init.py
        compute_dtype="float32",  # float32 | bfloat16 (the blocks' matmuls; params float32)
        query_chunk=0,  # > 0: causal attention by chunks of queries, skipping the masked half
        fused_decode=False,  # sampling: every head in one product, caches in the products'
        # layout (models/fused_heads.py); the same parameters, logits equal up to rounding
    ))
    config.data = ml_collections.ConfigDict(dict(
        task="text",  # text: the next character | pairs: source → target (pairs_task.py)
        path="",  # text: a UTF-8 file, "" is tiny Shakespeare; pairs: a source<TAB>target
        # file, "" is the shipped dates task
        val_path="",  # pairs: the held-out pairs ("": every 10th distinct pair of `path`)
        max_source_len=32,  # pairs: the longest source, in characters
        max_target_len=10,  # pairs: the longest target, in characters
        on_device_budget_mb=1024,  # text: the train stream lives on each device up to this
        # (its int32 copy); beyond, each chunk's windows are read on the host and sent with it
    ))
    config.train = ml_collections.ConfigDict(dict(
        seed=1337,
        num_steps=5000,
        batch_size=32,  # global batch, split over every device of every process
        grad_accum_steps=1,  # micro-batches per device per step (same global batch, less memory)
        steps_per_call=10,  # steps run on the device per dispatch from Python (fewer host stalls)
        chunk_seconds=2.0,  # fewer steps per call where a call would take longer: a stop
        # request (a scheduler's SIGTERM) is then served within about twice this
        learning_rate=1e-3,
        lr_schedule="constant",  # constant | cosine (linear warmup, then cosine to min)
        warmup_steps=0,
        min_learning_rate=1e-4,
        weight_decay=0.01,  # AdamW's leaves, on the weight matrices and embeddings only
        # (optim.decay_mask, by name: not biases, norm gains or QK-norm gains)
        optimizer="adamw",  # adamw | muon: the blocks' matrices on Muon, the rest on AdamW
        muon_learning_rate=0.02,  # muon: the Muon matrices' peak rate, on the same schedule
        muon_weight_decay=0.0,  # muon: decoupled weight decay of the Muon matrices
        muon_ns_steps=5,  # muon: Newton–Schulz iterations that orthogonalize each update
        cpu_library_products=True,  # XLA:CPU: the train step's matrix products by the YNNPACK
        # library (faster for the GPT's passes), or by XLA's own kernels (False: faster for
        # Muon's many small ones); gpt_jax/xla_options.py. No effect off the CPU
        beta1=0.9,
        beta2=0.999,
        grad_clip=1.0,  # global-norm clip; 0 turns it off
        eval_interval=500,
        eval_iters=200,
        log_interval=100,
        loss_plot=True,  # draw DIR/loss.png from metrics.jsonl at the end (matplotlib, ~1 s)
        checkpoint_every=1000,
        keep_checkpoints=3,
        keep_best_checkpoint=True,  # also keep the checkpoint of the lowest val loss (an
        # evaluation that lowers it saves its step)
    ))
    config.sample = ml_collections.ConfigDict(dict(
        max_new_tokens=300,  # each evaluation's sample, the last printed (pairs: on/off only)
    ))
    config.lock()
    return config


INT32_MAX = 2**31 - 1  # the step counter and the token ids are int32
SEED_MAX = 2**32 - 1  # jax.random.key keeps a seed's low 32 bits: 2^32 would train as 0 does
FLOAT32_TINY = 1.1754943508222875e-38  # float32's smallest normal number


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


def as_float32(value: float) -> float:
    """`value` rounded to float32, the precision jax computes in (±inf past its range)."""
    try:
        return struct.unpack("f", struct.pack("f", float(value)))[0]
    except OverflowError:
        return math.inf if value > 0 else -math.inf


# Float fields read on the host alone, never computed in float32 (a wall-clock time).
HOST_FLOATS = ("train.chunk_seconds",)


def require_float32(name: str, value: float, instead: str = "") -> None:
    """A finite `value` that float32 holds as itself or a neighbour: past float32's range it
    computes as inf, and below its smallest normal number as 0 or a subnormal, whose
    quotients overflow. `instead`: what to use for what so small a value was meant to do."""
    _require(-math.inf < value < math.inf, f"{name} must be a finite number, got {value}")
    _require(math.isfinite(as_float32(value)),
             f"{name}={value} is past float32's range (±3.4e38), the precision it is "
             f"computed in")
    _require(value == 0 or abs(as_float32(value)) >= FLOAT32_TINY,
             f"{name}={value} is below float32's smallest normal number (1.2e-38), the "
             f"precision it is computed in: it would compute as 0{instead}")


def _require_fraction(name: str, value: float) -> None:
    """value in [0, 1), in float32 too: 1 - 1e-9 rounds to 1 there, and divides by 0."""
    _require(0 <= value < 1, f"{name} must be in [0, 1), got {value}")
    _require(as_float32(value) < 1, f"{name}={value} rounds to 1 in float32, the precision "
             f"it is computed in: it must be in [0, 1), at most 0.99999994")


def _require_count(name: str, value: int, minimum: int) -> None:
    _require(value >= minimum, f"{name} must be >= {minimum}, got {value}")
    _require(value <= INT32_MAX, f"{name} must be <= {INT32_MAX} (2^31 - 1), got {value}")


def _did_you_mean(name: str, known) -> str:
    near = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def check_schema(config: ml_collections.ConfigDict, source: str = "the config") -> None:
    """Every field of `config` is a field of base_config() with the same type, and none is
    missing: a mistyped name or value is refused wherever it came from."""
    def walk(node, schema, prefix: str) -> None:
        for key in node:
            path = prefix + key
            if key not in schema:
                known = [prefix + k for k in schema]
                raise UserError(f"{source} has an unknown field {path}"
                                f"{_did_you_mean(path, known)}")
            value, expected = node[key], schema[key]
            if isinstance(expected, ml_collections.ConfigDict):
                if not isinstance(value, (ml_collections.ConfigDict, dict)):
                    raise UserError(f"{source}: {path} must be a section, got {value!r}")
                walk(value, expected, path + ".")
            elif not _same_type(value, expected):
                raise UserError(f"{source}: {path} must be of type {type(expected).__name__}, "
                                f"got {value!r}")
        missing = [prefix + k for k in schema if k not in node]
        if missing:
            raise UserError(f"{source} lacks the field {missing[0]}: start config files from "
                            f"gpt_jax.config.base_config()")

    walk(config, base_config(), "")


def _same_type(value: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(expected, bool)
    if isinstance(expected, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(expected))


def anchor_data_paths(config: ml_collections.ConfigDict) -> None:
    """data.path and data.val_path made absolute (~ expanded): a run's config.json then names
    the same files from any working folder (a ladder rerun from another folder took its own
    input.txt for the same step's data, and read back the runs trained on the first)."""
    for field in ("path", "val_path"):
        if config.data[field]:
            config.data[field] = str(user_path(config.data[field]).absolute())


def unread_fields(model_name: str) -> list[str]:
    """The model fields that the model `model_name` does not read."""
    read = SMALL_MODELS_READ.get(model_name)
    if read is None:
        return list(NOT_READ.get(model_name, ()))
    return [field for field in base_config().model if field not in ("name", *read)]


def reset_unread(config: ml_collections.ConfigDict) -> None:
    """A saved run's unread model fields back to their defaults: a run saved before they were
    refused (a bigram with n_embd=64) trained as if they were, and stays restorable."""
    defaults = base_config().model
    for field in unread_fields(config.model.name):
        config.model[field] = defaults[field]


def validate(config: ml_collections.ConfigDict) -> None:
    """Checks settings that would otherwise fail deep inside jax, or silently train nonsense."""
    check_schema(config)
    m, t = config.model, config.train
    _require(m.name in MODEL_NAMES, f"model.name must be one of {MODEL_NAMES}, got {m.name!r}")
    for section, fields in (("model", ("block_size", "n_embd", "n_head", "ffn_mult", "context",
                                       "mlp_hidden")),
                            ("train", ("num_steps", "batch_size", "grad_accum_steps",
                                       "steps_per_call", "eval_interval", "eval_iters",
                                       "log_interval", "checkpoint_every",
                                       "keep_checkpoints"))):
        for field in fields:
            _require_count(f"{section}.{field}", config[section][field], 1)
    _require_count("model.n_layer", m.n_layer, 0)
    _require(config.data.task in TASKS,
             f"data.task must be one of {TASKS}, got {config.data.task!r}")
    for field in ("max_source_len", "max_target_len"):
        _require_count(f"data.{field}", config.data[field], 1)
    _require_count("data.on_device_budget_mb", config.data.on_device_budget_mb, 0)
    _require(m.name != "encoder_decoder" or config.data.task == "pairs",
             "model.name=encoder_decoder reads source → target pairs: set data.task=pairs")
    _require(m.name != "encoder_decoder" or m.n_layer >= 1,
             "model.n_layer=0: an encoder–decoder without blocks has no cross-attention, so its "
             "decoder would never read the source: set model.n_layer >= 1")
    _require_fraction("model.dropout", m.dropout)
    _require(m.dropout == 0.0 or m.name in ("gpt", "encoder_decoder"),
             f"model.dropout regularizes a Transformer; the {m.name} model has no dropout: "
             f"leave it at 0")
    defaults = base_config().model
    what = "encoder–decoder" if m.name == "encoder_decoder" else f"{m.name} model"
    for field in unread_fields(m.name):
        _require(m[field] == defaults[field],
                 f"model.{field} is not read by the {what}, which would ignore it: leave it at "
                 f"{defaults[field]!r}")
    data_defaults = base_config().data
    for field, task in (("max_source_len", "pairs"), ("max_target_len", "pairs"),
                        ("on_device_budget_mb", "text")):
        _require(config.data.task == task or config.data[field] == data_defaults[field],
                 f"data.{field} is read by data.task={task} only, and this run's task is "
                 f"{config.data.task}: leave it at {data_defaults[field]}")
    _require(config.data.task == "pairs" or not config.data.val_path,
             "data.val_path names a file of held-out pairs, for data.task=pairs; a text task "
             "holds out its own validation split")
    _require(config.data.task != "pairs" or config.data.path or not config.data.val_path,
             "data.val_path holds out pairs of a data.path of your own; the shipped dates "
             "task (data.path=\"\") has its own held-out dates: set data.path too, or drop "
             "data.val_path")
    _require(config.data.task != "pairs" or m.name in ("gpt", "encoder_decoder"),
             f"data.task=pairs trains model.name gpt or encoder_decoder, not {m.name!r}")
    if config.data.task == "pairs":
        d = config.data
        need = d.max_target_len + 1 if m.name == "encoder_decoder" \
            else d.max_source_len + d.max_target_len + 1
        _require(m.block_size >= need,
                 f"model.block_size ({m.block_size}) must hold "
                 + ("the target and its end token" if m.name == "encoder_decoder"
                    else "source, separator, target and end token") +
                 f": at least {need} (--config.model.block_size={need})")
    _require(m.name not in ("gpt", "encoder_decoder") or m.n_embd % m.n_head == 0,
             f"model.n_embd ({m.n_embd}) must be divisible by model.n_head ({m.n_head})")
    _require(m.activation in ACTIVATIONS,
             f"model.activation must be one of {ACTIVATIONS}, got {m.activation!r}")
    _require(m.activation != "swiglu" or m.name != "mlp",
             "model.activation=swiglu gates a Transformer's feed-forward: the mlp model has none")
    _require(m.pos_emb in POS_EMBS,
             f"model.pos_emb must be one of {POS_EMBS}, got {m.pos_emb!r}")
    _require(1 < m.rope_base < math.inf,
             f"model.rope_base must be a number > 1, got {m.rope_base}")
    _require(as_float32(m.rope_base) > 1, f"model.rope_base={m.rope_base} rounds to 1 in "
             f"float32, the precision it is computed in: every pair would turn alike; it must "
             f"be at least 1.0000001")
    _require(m.pos_emb != "rope" or m.name != "gpt" or m.n_embd // m.n_head % 2 == 0,
             f"model.pos_emb=rope turns pairs of channels: the head size n_embd / n_head must "
             f"be even, got {m.n_embd // m.n_head}")
    _require(m.norm in NORMS, f"model.norm must be one of {NORMS}, got {m.norm!r}")
    _require(m.norm == "layernorm" or m.layer_norm,
             f"model.norm={m.norm} chooses the norms that model.layer_norm puts in: set "
             f"model.layer_norm=True")
    _require(not m.zero_init_proj or m.projections,
             "model.zero_init_proj zeroes the output projections: set model.projections=True")
    # without the residual path a block whose output projection is zero outputs zero, and no
    # gradient reaches a kernel before it: the run would stay at its first loss
    _require(not m.zero_init_proj or m.residual or m.n_layer == 0,
             "model.zero_init_proj zeroes the output projections, and without model.residual "
             "each block then passes on nothing (no gradient reaches the kernels): set "
             "model.residual=True")
    _require(0 <= m.logit_softcap < math.inf,
             f"model.logit_softcap must be a number >= 0 (0 is off), got {m.logit_softcap}")
    _require(m.compute_dtype in ("float32", "bfloat16"),
             f"model.compute_dtype must be float32 or bfloat16, got {m.compute_dtype!r}")
    _require_count("model.query_chunk", m.query_chunk, 0)
    _require(m.init in STYLES, f"model.init must be one of {STYLES}, got {m.init!r}")
    _require(m.projections or not m.ffwd or m.ffn_mult == 1,
             "a feed-forward without projections must keep the width: set model.ffn_mult=1")
    _require(m.projections or not m.ffwd or m.activation != "swiglu",
             "a feed-forward without projections must keep the width, which SwiGLU's is not: "
             "set model.projections=True")
    _require(0 < t.learning_rate < math.inf,
             f"train.learning_rate must be a positive number, got {t.learning_rate}")
    _require(0 <= t.min_learning_rate < math.inf,
             f"train.min_learning_rate must be a number >= 0, got {t.min_learning_rate}")
    _require(t.lr_schedule in ("constant", "cosine"),
             f"train.lr_schedule must be constant or cosine, got {t.lr_schedule!r}")
    _require(t.lr_schedule != "cosine" or t.min_learning_rate <= t.learning_rate,
             f"train.min_learning_rate ({t.min_learning_rate}) is above train.learning_rate "
             f"({t.learning_rate}): the cosine schedule would raise the rate as it decays")
    _require_count("train.warmup_steps", t.warmup_steps, 0)
    _require(0 <= t.seed <= SEED_MAX, f"train.seed must be in [0, 2^32 - 1], got {t.seed}")
    _require(0 <= t.grad_clip < math.inf, f"train.grad_clip must be >= 0, got {t.grad_clip}")
    _require(0 <= t.weight_decay < math.inf,
             f"train.weight_decay must be a number >= 0, got {t.weight_decay}")
    for beta in ("beta1", "beta2"):
        _require_fraction(f"train.{beta}", t[beta])
    _require(t.optimizer in OPTIMIZERS,
             f"train.optimizer must be one of {OPTIMIZERS}, got {t.optimizer!r}")
    hidden = m.name in ("mlp", "encoder_decoder") or (m.name == "gpt" and m.n_layer >= 1)
    _require(t.optimizer != "muon" or hidden,
             f"train.optimizer=muon orthogonalizes the hidden weight matrices, and the "
             f"{m.name} model{' with n_layer=0' if m.name == 'gpt' else ''}"
             f" has none (everything would be AdamW's): use train.optimizer=adamw")
    _require(0 < t.chunk_seconds < math.inf,
             f"train.chunk_seconds must be a positive number, got {t.chunk_seconds}")
    _require(0 < t.muon_learning_rate < math.inf,
             f"train.muon_learning_rate must be a positive number, got {t.muon_learning_rate}")
    _require(0 <= t.muon_weight_decay < math.inf,
             f"train.muon_weight_decay must be a number >= 0, got {t.muon_weight_decay}")
    _require(isinstance(t.muon_ns_steps, int) and 1 <= t.muon_ns_steps <= 20,
             f"train.muon_ns_steps must be an integer in [1, 20], got {t.muon_ns_steps}")
    _require_count("sample.max_new_tokens", config.sample.max_new_tokens, 0)
    _require(isinstance(config.reference_val_loss, (int, float))
             and not isinstance(config.reference_val_loss, bool)
             and config.reference_val_loss >= 0,
             f"reference_val_loss (the lecture's figure beside the ladder's; 0: none) must be a "
             f"number >= 0, got {config.reference_val_loss}")
    for name, value in _float_fields(config):
        if name not in HOST_FLOATS:
            require_float32(name, value)
    # Decoupled weight decay multiplies the weights by (1 - rate × decay) every step: at 1 or
    # more it zeroes them or flips their sign, and the run diverges within a few steps.
    for rate, decay in (("learning_rate", "weight_decay"),
                        ("muon_learning_rate", "muon_weight_decay")):
        _require(t[rate] * t[decay] < 1,
                 f"train.{decay} × train.{rate} = {t[decay] * t[rate]:.3g}, and each step "
                 f"multiplies the weights by 1 minus that: it must be < 1 (usually about "
                 f"1e-4); lower train.{decay} or train.{rate}")


# Fields read only when a switch is on: set with the switch off, they change nothing. Warned
# of, not refused: turning a switch off on a config that sets them (the Muon config run with
# AdamW) is a fair ablation.
_READ_WITH = (("train.muon_learning_rate", "train.optimizer", "muon"),
              ("train.muon_weight_decay", "train.optimizer", "muon"),
              ("train.muon_ns_steps", "train.optimizer", "muon"),
              ("train.min_learning_rate", "train.lr_schedule", "cosine"),
              ("model.rope_base", "model.pos_emb", "rope"),
              ("model.ffn_mult", "model.ffwd", True),
              ("model.activation", "model.ffwd", True))
# Below it a soft-cap bounds the likeliest of 65 characters (at 5: 99.7%; at 3: 86%): a floor
# under the loss.
SOFTCAP_SURE = 5.0
# What only the GPT's blocks read: with n_layer=0 they change nothing.
_BLOCK_FIELDS = ("n_head", "rope_base", "ffwd", "ffn_mult", "activation", "residual",
                 "projections", "qk_norm", "zero_init_proj", "dropout", "fused_dropout",
                 "query_chunk", "fused_decode", "compute_dtype")


def switched_off(config: ml_collections.ConfigDict) -> list[tuple[str, str, object]]:
    """(field, switch, the value that turns it on) of each field this config does not read,
    its switch being off."""
    return [(field, switch, on) for field, switch, on in _READ_WITH
            if _get(config, switch) != on]


def _get(config: ml_collections.ConfigDict, field: str):
    section, name = field.split(".")
    return config[section][name]


def doubts(config: ml_collections.ConfigDict) -> list[str]:
    """Settings that train, but hardly as meant: a warning each, not a refusal (a quick try of a
    config with fewer steps is a fair thing to run)."""
    t = config.train
    said = []
    defaults = base_config()
    for field, switch, on in switched_off(config):
        if _get(config, field) != _get(defaults, field):
            said.append(f"{field} ({_get(config, field)!r}) is read with {switch}={on!r} "
                        f"only, and this run has {_get(config, switch)!r}: it changes nothing")
    m = config.model
    if config.data.task == "pairs" and config.sample.max_new_tokens not in (
            0, defaults.sample.max_new_tokens):
        said.append(f"sample.max_new_tokens ({config.sample.max_new_tokens}) is read by a pairs "
                    f"run as on (> 0) or off (0): its sample writes whole targets, of at most "
                    f"data.max_target_len characters")
    target_window = config.data.max_target_len + 1  # (a warning: runs trained so restore)
    if m.name == "encoder_decoder" and m.block_size > target_window:
        said.append(f"model.block_size ({m.block_size}) of an encoder–decoder: it reads the "
                    f"target and its end token, data.max_target_len + 1 = {target_window} "
                    f"positions; the rest of its position table is never read")
    if m.name == "gpt" and 0 < m.block_size <= m.query_chunk:
        said.append(f"model.query_chunk ({m.query_chunk}) is not below model.block_size "
                    f"({m.block_size}): one chunk, the whole block: it changes nothing")
    if m.fused_dropout and m.dropout == 0:
        said.append("model.fused_dropout (True) is read with model.dropout > 0 only, and this "
                    "run has 0.0: it changes nothing")
    if m.name == "gpt" and config.data.task == "pairs" and m.fused_decode:
        said.append("model.fused_decode (True) is read by a text run's sampler; the GPT on "
                    "pairs re-reads its window for every token (translation.py): it changes "
                    "nothing")
    if m.name == "gpt" and m.n_layer == 0:
        unread = [f"model.{field}" for field in _BLOCK_FIELDS if m[field] != defaults.model[field]]
        unread += ["model.pos_emb='rope' (no queries or keys to turn: as 'none')"] \
            if m.pos_emb == "rope" else []
        if unread:
            said.append(f"model.n_layer=0: a GPT without blocks does not read "
                        f"{', '.join(unread)}: they change nothing")
    if m.name == "gpt" and m.n_layer > 0 and m.pos_emb == "rope" and m.block_size == 1:
        said.append("model.pos_emb='rope' with model.block_size=1: every query and key is at "
                    "position 0, turned by no angle: it changes nothing (as 'none')")
    if 0 < m.logit_softcap < SOFTCAP_SURE:
        said.append(f"model.logit_softcap ({m.logit_softcap}) keeps every logit within "
                    f"±{m.logit_softcap}: no token can be more than e^{2 * m.logit_softcap:g} "
                    f"= {math.exp(2 * m.logit_softcap):.3g} times as likely as another, so the "
                    f"model can hardly be sure of a next token (the recipes cap at 15 to 30)")
    if 0 < t.num_steps <= t.warmup_steps:
        said.append(f"train.warmup_steps ({t.warmup_steps}) is not below train.num_steps "
                    f"({t.num_steps}): the learning rate rises for the whole run and never "
                    f"reaches train.learning_rate")
    return said


def _float_fields(config: ml_collections.ConfigDict) -> list[tuple[str, float]]:
    """('train.learning_rate', 0.001), ...: every float field of the schema, with its value."""
    def walk(node, schema, prefix: str):
        for key, expected in schema.items():
            if isinstance(expected, ml_collections.ConfigDict):
                yield from walk(node[key], expected, prefix + key + ".")
            elif isinstance(expected, float):
                yield prefix + key, node[key]

    return list(walk(config, base_config(), ""))


def config_path(spec: str) -> Path:
    """The file of `path.py[:variant]`. ml_collections splits the spec at its first ':', so a
    file under a folder whose name holds one cannot be loaded: said as such, not as a file
    "not found" at the path's first part."""
    path = user_path(spec.partition(":")[0])
    # "FILE.py:" gives get_config the variant "", which each file read its own way: as its
    # default, as an unknown variant, or as "takes none".
    if spec.partition(":")[1:] == (":", "") and path.is_file():
        raise UserError(f"config {spec!r} ends in ':' without a variant: drop the ':', or "
                        f"name a variant")
    if not path.exists():
        parts = spec.split(":")
        if any(user_path(":".join(parts[:n])).is_file() for n in range(2, len(parts) + 1)):
            raise UserError(f"config {spec}: a config file's path cannot hold ':', which "
                            f"separates the file from its variant; move or rename the file")
    return path


def load_config_file(spec: str) -> ml_collections.ConfigDict:
    """`get_config()` of a config file, as `path.py` or `path.py:variant`, loaded the way
    `--config` loads it (ml_collections.config_flags); for commands that load several.

    Config files are the user's own Python (never anything read from a workdir: a run's
    config is stored as JSON there).
    """
    path = config_path(spec)
    if not path.is_file():
        raise not_there("config file", path)
    # config_flags loads every file as the module "config_config" with the deprecated
    # load_module(), which re-executes into a module already in sys.modules: a second file
    # without get_config() would silently reuse the first one's.
    sys.modules.pop("config_config", None)
    try:
        config = ConfigFileFlagParser("config").parse(spec)
        config.lock()  # an _ErrorConfig (the file failed to import) raises here
    except UserError:
        raise
    except Exception as e:
        raise UserError(config_file_error(spec, e)) from None
    if not isinstance(config, ml_collections.ConfigDict):
        raise UserError(f"get_config() of {spec} must return a ConfigDict")
    check_schema(config)  # a field missing is one line here, not an AttributeError later
    return config


def config_file_error(spec: str, error: BaseException) -> str:
    """One line for an exception raised while loading a config file."""
    path = spec.partition(":")[0]
    text = str(error.args[0] if isinstance(error, (KeyError, AttributeError)) and error.args
               else error)
    unknown = re.search(r'Key "(.+?)" does not exist', text)
    if unknown:
        near = re.search(r'Did you mean "(.+?)"', text)
        hint = f" (did you mean {near.group(1)!r}?)" if near else ""
        return f"config file {path} sets an unknown field {unknown.group(1)!r}{hint}"
    if "get_config" in text and isinstance(error, AttributeError):
        return f"config file {path} has no get_config() function"
    if re.search(r"get_config\(\) takes 0 positional arguments", text):
        return f"config file {path} takes no ':variant', got {spec.partition(':')[2]!r}"
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    if "No such file or directory" in text and "earlier failure to load" in text:
        return f"config file not found: {path}"
    if isinstance(error, OSError) and "earlier failure to load" in text:
        causes = [line for line in lines if line.startswith("[Errno")]
        return f"config file {path} failed to load: {causes[-1] if causes else last}"
    if not re.match(r"\w+(Error|Exception|Warning)\b", last):  # the traceback's last line has it
        last = f"{type(error).__name__}: {last}"
    return f"config file {path} failed to load: {last}"


def set_field(config: ml_collections.ConfigDict, dotted: str, value: Any) -> None:
    """config[a][b] = value for 'a.b', naming an unknown field with a did-you-mean."""
    node, keys = config, dotted.split(".")
    for depth, key in enumerate(keys):
        if not isinstance(node, ml_collections.ConfigDict) or key not in node:
            known = [".".join(keys[:depth] + [k]) for k in node] \
                if isinstance(node, ml_collections.ConfigDict) else []
            raise UserError(f"unknown config field --config.{dotted}"
                            f"{_did_you_mean('.'.join(keys[:depth + 1]), known)}")
        if depth < len(keys) - 1:
            node = node[key]
    node[keys[-1]] = value


def parse_settings(settings: list[str], flag: str = "--set") -> dict[str, Any]:
    """A benchmark's --set flags, ['model.compute_dtype=bfloat16', 'train.batch_size=32'], as
    typed overrides for apply_overrides."""
    out = {}
    for setting in settings:
        field, sep, text = setting.partition("=")
        if not sep or not field:
            raise UserError(f"{flag}={setting!r}: expected FIELD=VALUE")
        try:
            out[field] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[field] = text  # a bare word: a string
    return out


def override_flags(settings: dict[str, Any]) -> list[str]:
    """parse_settings' values as train.py's --config.FIELD=TEXT flags, each written so that
    config_flags parses it back to the value checked: a string as its bare text (a string
    field keeps quotes, so "'constant'" would reach train.py quoted), a bool as true or false."""
    def text(value: Any) -> str:
        if isinstance(value, str):
            return value
        return str(value).lower() if isinstance(value, bool) else repr(value)

    return [f"--config.{field}={text(value)}" for field, value in settings.items()]


def apply_overrides(config: ml_collections.ConfigDict, overrides: dict[str, Any]) -> None:
    """Sets {'train.num_steps': 100}: typed values, as config_flags parses them."""
    for dotted, value in overrides.items():
        try:
            set_field(config, dotted, value)
        except TypeError as e:
            raise UserError(f"--config.{dotted}={value!r}: {e}") from None
