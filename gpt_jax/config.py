"""The config schema: every field a run reads, with the lecture's small-model defaults.

Config files in `configs/` start from `base_config()` and change a few fields. `validate`
turns impossible settings into one clear UserError before anything compiles.
"""

from __future__ import annotations

import ast
import difflib
import importlib.machinery
import importlib.util
import inspect
import math
from pathlib import Path

import ml_collections

from gpt_jax.errors import UserError
from gpt_jax.models.feedforward import ACTIVATIONS
from gpt_jax.models.init import STYLES

MODEL_NAMES = ("bigram", "ngram", "mlp", "gpt")


def base_config() -> ml_collections.ConfigDict:
    """The lecture's settings for its small models (batch 32, block 8, width 32, lr 1e-3)."""
    config = ml_collections.ConfigDict()
    config.description = ""  # what this config adds, one line
    config.reference_val_loss = 0.0  # the lecture's / nanoGPT's figure for this config

    config.model = ml_collections.ConfigDict(dict(
        name="gpt",  # one of MODEL_NAMES
        block_size=8,  # context length T
        n_embd=32,  # also the mlp's embedding size per character
        context=3,  # ngram and mlp: previous characters seen (an n-gram has n = context + 1)
        mlp_hidden=128,  # mlp: width of its hidden layer
        n_head=4,
        n_layer=1,
        pos_emb=True,
        ffwd=True,
        ffn_mult=4,
        activation="relu",  # relu | gelu | tanh
        residual=True,
        projections=True,
        layer_norm=True,
        dropout=0.0,
        tie_embeddings=False,
        init="gpt2",  # gpt2 | torch: see gpt_jax/models/init.py
        compute_dtype="float32",  # float32 | bfloat16 (matmuls only; params stay float32)
        query_chunk=0,  # > 0: causal attention by chunks of queries, skipping the masked half
    ))
    config.data = ml_collections.ConfigDict(dict(
        path="",  # a UTF-8 text file; "" is tiny Shakespeare, shipped with the package
    ))
    config.train = ml_collections.ConfigDict(dict(
        seed=1337,
        num_steps=5000,
        batch_size=32,  # global batch, split over every device of every process
        grad_accum_steps=1,  # micro-batches per device per step (same global batch, less memory)
        steps_per_call=10,  # steps run on the device per dispatch from Python (fewer host stalls)
        learning_rate=1e-3,
        lr_schedule="constant",  # constant | cosine (linear warmup, then cosine to min)
        warmup_steps=0,
        min_learning_rate=1e-4,
        weight_decay=0.01,  # AdamW, on matrices only (ndim >= 2)
        beta1=0.9,
        beta2=0.999,
        grad_clip=1.0,  # global-norm clip; 0 turns it off
        eval_interval=500,
        eval_iters=200,
        log_interval=100,
        checkpoint_every=1000,
        keep_checkpoints=3,
    ))
    config.sample = ml_collections.ConfigDict(dict(
        max_new_tokens=300,  # the sample printed at the end of training
    ))
    return config


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


def validate(config: ml_collections.ConfigDict) -> None:
    """Checks settings that would otherwise fail deep inside jax, or silently train nonsense."""
    m, t = config.model, config.train
    _require(m.name in MODEL_NAMES, f"model.name must be one of {MODEL_NAMES}, got {m.name!r}")
    for section, fields in (("model", ("block_size", "n_embd", "n_head", "ffn_mult", "context",
                                       "mlp_hidden")),
                            ("train", ("num_steps", "batch_size", "grad_accum_steps",
                                       "steps_per_call",
                                       "eval_interval", "eval_iters", "log_interval",
                                       "checkpoint_every", "keep_checkpoints"))):
        for field in fields:
            value = config[section][field]
            _require(value >= 1, f"{section}.{field} must be >= 1, got {value}")
    _require(m.n_layer >= 0, f"model.n_layer must be >= 0, got {m.n_layer}")
    _require(m.name != "gpt" or m.n_embd % m.n_head == 0,
             f"model.n_embd ({m.n_embd}) must be divisible by model.n_head ({m.n_head})")
    _require(0.0 <= m.dropout < 1.0, f"model.dropout must be in [0, 1), got {m.dropout}")
    _require(m.activation in ACTIVATIONS,
             f"model.activation must be one of {tuple(ACTIVATIONS)}, got {m.activation!r}")
    _require(m.compute_dtype in ("float32", "bfloat16"),
             f"model.compute_dtype must be float32 or bfloat16, got {m.compute_dtype!r}")
    _require(m.query_chunk >= 0, f"model.query_chunk must be >= 0, got {m.query_chunk}")
    _require(m.init in STYLES, f"model.init must be one of {STYLES}, got {m.init!r}")
    _require(m.projections or not m.ffwd or m.ffn_mult == 1,
             "a feed-forward without projections must keep the width: set model.ffn_mult=1")
    _require(0 < t.learning_rate < math.inf,
             f"train.learning_rate must be a positive number, got {t.learning_rate}")
    _require(t.lr_schedule in ("constant", "cosine"),
             f"train.lr_schedule must be constant or cosine, got {t.lr_schedule!r}")
    _require(0 <= t.warmup_steps, f"train.warmup_steps must be >= 0, got {t.warmup_steps}")
    _require(t.seed >= 0, f"train.seed must be >= 0, got {t.seed}")
    _require(t.grad_clip >= 0, f"train.grad_clip must be >= 0, got {t.grad_clip}")


def load_config_file(spec: str) -> ml_collections.ConfigDict:
    """Runs `get_config()` of a config file, as `path.py` or `path.py:variant`.

    Config files are the user's own Python (never anything read from a workdir: a run's
    config is stored as JSON there).
    """
    path, _, variant = spec.partition(":")
    file = Path(path)
    if not file.is_file():
        raise UserError(f"config file not found: {path}")
    loader = importlib.machinery.SourceFileLoader(f"_config_{file.stem}", str(file))
    module_spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except UserError:
        raise
    except Exception as e:  # a config file that does not even import
        raise UserError(f"config file {path} failed to load: {type(e).__name__}: {e}") from None
    get_config = getattr(module, "get_config", None)
    if not callable(get_config):
        raise UserError(f"config file {path} has no get_config() function")
    n_params = len(inspect.signature(get_config).parameters)
    if variant and n_params == 0:
        raise UserError(f"config file {path} takes no ':variant', got {variant!r}")
    config = get_config(variant) if variant else get_config()
    if not isinstance(config, ml_collections.ConfigDict):
        raise UserError(f"get_config() of {path} must return a ConfigDict")
    return config


def _parse_value(text: str, current):
    """`text` as the type of the field it replaces."""
    if isinstance(current, bool):
        lowered = text.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ValueError("expected true or false")
    if isinstance(current, int):
        return int(text)
    if isinstance(current, float):
        return float(text)
    if isinstance(current, (tuple, list)):
        value = ast.literal_eval(text)
        if not isinstance(value, (tuple, list)):
            raise ValueError("expected a list")
        return type(current)(value)
    return text


def apply_overrides(config: ml_collections.ConfigDict, overrides: dict[str, str]) -> None:
    """Applies {'model.n_layer': '4'} to a config, typed like the field, naming bad ones."""
    for dotted, text in overrides.items():
        node = config
        keys = dotted.split(".")
        for depth, key in enumerate(keys):
            if not isinstance(node, ml_collections.ConfigDict) or key not in node:
                known = list(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
                near = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean {'.'.join(keys[:depth] + near)!r}?)" if near else ""
                raise UserError(f"unknown config field --config.{dotted}{hint}")
            if depth < len(keys) - 1:
                node = node[key]
        current = node[keys[-1]]
        if isinstance(current, ml_collections.ConfigDict):
            raise UserError(f"--config.{dotted} is a section; set one of its fields")
        try:
            value = _parse_value(text, current)
        except (ValueError, SyntaxError) as e:
            raise UserError(f"--config.{dotted}={text}: expected a value of type "
                            f"{type(current).__name__} ({e})") from None
        node[keys[-1]] = value
