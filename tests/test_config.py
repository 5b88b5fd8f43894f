import functools
import math
import re

import ml_collections
import pytest

from conftest import REPO
from gpt_jax import ladder_steps
from gpt_jax.config import (
    ACTIVATIONS,
    MODEL_NAMES,
    NORMS,
    OPTIMIZERS,
    POS_EMBS,
    STYLES,
    TASKS,
    apply_overrides,
    base_config,
    doubts,
    load_config_file,
    override_flags,
    parse_settings,
    validate,
)
from gpt_jax.errors import UserError

STEPS = [*ladder_steps.STEPS, ladder_steps.FULL_STEP, *ladder_steps.MODERN_STEPS,
         *ladder_steps.SEQ2SEQ_STEPS]
FILES = ["configs/shakespeare_char_cpu.py:short", "configs/shakespeare_char_cpu.py:modern",
         "configs/shakespeare_char_cpu.py:modern_short",
         "configs/shakespeare_char_cpu.py:modern_fast",
         "configs/shakespeare_char.py:modern", "configs/ngram.py", "configs/mlp.py"]


@pytest.mark.parametrize("spec", FILES + [f"configs/{spec}" for _, spec in STEPS])
def test_every_config_loads_validates_and_states_its_reference(spec):
    config = load_config_file(str(REPO / spec))
    validate(config)
    assert doubts(config) == []  # no field that the run would not read, no endless warmup
    # the lecture's steps and nanoGPT's configs have a figure; the modern rungs have none
    assert (config.reference_val_loss == 0 if "modern.py:" in spec
            else config.reference_val_loss > 0) and config.description
    apply_overrides(config, {"train.num_steps": 200})
    assert config.train.num_steps == 200


def test_ladder_steps_grow_one_idea_at_a_time():
    m = {name: load_config_file(str(REPO / f"configs/{spec}")).model
         for name, spec in [*ladder_steps.STEPS, ladder_steps.FULL_STEP]}
    assert m["bigram"].name == "bigram"
    assert (m["head"].n_head, m["multihead"].n_head) == (1, 4)
    assert not m["multihead"].ffwd and m["ffwd"].ffwd
    assert not m["ffwd"].residual and m["residual"].residual and m["residual"].n_layer == 3
    assert not m["residual"].layer_norm and m["layernorm"].layer_norm
    assert (m["gpt"].n_layer, m["gpt"].n_embd, m["gpt"].block_size) == (6, 384, 256)


def test_overrides_are_applied():
    config = load_config_file(str(REPO / "configs/bigram.py"))
    apply_overrides(config, {"model.n_layer": 4, "train.learning_rate": 3e-4,
                             "model.residual": False, "data.path": "x.txt"})
    assert config.model.n_layer == 4 and config.train.learning_rate == 3e-4
    assert config.model.residual is False and config.data.path == "x.txt"


@pytest.mark.parametrize("overrides, message", [
    ({"model.n_layr": 4}, "unknown config field --config.model.n_layr .*'model.n_layer'"),
    ({"modle.n_layer": 4}, "unknown config field --config.modle.n_layer .*'model'"),
    ({"train.num_steps": "abc"}, "--config.train.num_steps='abc'"),
])
def test_bad_overrides_are_named(overrides, message):
    config = load_config_file(str(REPO / "configs/bigram.py"))
    with pytest.raises(UserError, match=message):
        apply_overrides(config, overrides)


def test_a_benchmark_s_settings_reach_train_py_as_they_were_checked(monkeypatch):
    """time_to_loss checks parse_settings' values, then passes them to train.py: a quoted
    'constant' passed the check, and train.py got it with its quotes."""
    from absl import flags
    from ml_collections import config_flags

    spec = str(REPO / "configs/shakespeare_char_cpu.py:short")
    settings = parse_settings(["train.lr_schedule='constant'", "model.compute_dtype=bfloat16",
                               "train.learning_rate=1", "train.weight_decay=1e-1",
                               "train.num_steps=300", "model.bias=False", "data.path=a b.txt"])
    checked = load_config_file(spec)
    apply_overrides(checked, settings)
    argv = ["train.py", f"--config={spec}", *override_flags(settings)]
    monkeypatch.setattr("sys.argv", argv)  # config_flags reads the overrides' names there
    command_flags = flags.FlagValues()
    config_flags.DEFINE_config_file("config", flag_values=command_flags)
    command_flags(argv)
    assert command_flags.config.to_dict() == checked.to_dict()
    assert checked.train.lr_schedule == "constant" and checked.model.bias is False


MISSING = object()  # a row's value that deletes the field
COUNTS = {"model": {"block_size": 1, "n_embd": 1, "n_head": 1, "ffn_mult": 1, "context": 1,
                    "mlp_hidden": 1, "n_layer": 0, "query_chunk": 0},
          "data": {"max_source_len": 1, "max_target_len": 1, "on_device_budget_mb": 0},
          "train": {"num_steps": 1, "batch_size": 1, "grad_accum_steps": 1, "steps_per_call": 1,
                    "eval_interval": 1, "eval_iters": 1, "log_interval": 1,
                    "checkpoint_every": 1, "keep_checkpoints": 1, "warmup_steps": 0},
          "sample": {"max_new_tokens": 0}}
PAIRS_SEQ2SEQ = {"data.task": "pairs", "model.name": "encoder_decoder",
                 "model.block_size": 11}  # target 10 + end
PAIRS_GPT = {"data.task": "pairs", "model.block_size": 43}  # source 32 + BOS + target 10
F32_MAX = 3.4028234663852886e38  # the largest float32: one more unit in its last place is inf


def _count_rows():
    """Each count one below its minimum and one above int32, beside the bounds themselves."""
    for section, fields in COUNTS.items():
        for name, low in fields.items():
            field = f"{section}.{name}"
            # n_embd must divide by n_head in a GPT: test n_embd's bounds with one head, and
            # n_head's at the widest n_embd (a prime), the mlp's own fields on the mlp, so no
            # other check can refuse the row.
            # The pairs' lengths are read by a pairs task only, whose block must hold the
            # target and its end token: the longest target is one less than the longest block.
            # (an encoder–decoder's block is exactly its target and end token)
            def other(value, name=name, section=section):
                return {"model.n_head": 1} if name == "n_embd" else \
                    {"model.n_embd": 2**31 - 1} if name == "n_head" else \
                    {"model.name": "mlp"} if name in ("context", "mlp_hidden") else \
                    {**PAIRS_SEQ2SEQ, "model.block_size": min(value + 1, 2**31 - 1)} \
                    if name == "max_target_len" else \
                    PAIRS_SEQ2SEQ if section == "data" and name.startswith("max_") else {}
            highest = 2**31 - 2 if name == "max_target_len" else 2**31 - 1
            yield ({field: low - 1, **other(low)}, f"{field} must be >= {low}, got {low - 1}",
                   [{field: low, **other(low)}])
            yield ({field: 2**31, **other(highest)},
                   f"{field} must be <= 2147483647 (2^31 - 1), got 2147483648",
                   [{field: highest, **other(highest)}])


def _range_rows(field, message, refused, accepted):
    for value, edge in zip(refused, accepted, strict=True):
        yield {field: value}, f"{message}, got {value}", [{field: edge}]


# Huge rates and decays that pass, their product (the weights' decay per step) kept below 1.
DECAY_BELOW_1 = {
    "train.learning_rate": {"train.learning_rate": F32_MAX, "train.weight_decay": 0.0},
    "train.weight_decay": {"train.weight_decay": 1e36, "train.learning_rate": 1e-37},
    "train.muon_learning_rate": {"train.muon_learning_rate": F32_MAX},  # decay 0 by default
    "train.muon_weight_decay": {"train.muon_weight_decay": 1e36,
                                "train.muon_learning_rate": 1e-37},
}


def _float32_rows():
    """Every float field of the schema past float32's range, and below its smallest normal
    number where the field's own range lets such a value through."""
    schema = base_config()
    sections = [("", schema), *((k, v) for k, v in schema.items()
                                if isinstance(v, ml_collections.ConfigDict))]
    for section, fields in sections:
        for name, value in fields.items():
            field = f"{section}.{name}".lstrip(".")
            if not isinstance(value, float) or field == "train.chunk_seconds":  # the host's
                continue  # wall-clock time, never computed in float32: any positive number
            if name not in ("dropout", "beta1", "beta2"):  # whose range refuses 1e39 first
                yield ({field: 1e39}, f"{field}=1e+39 is past float32's range (±3.4e38), the "
                                      f"precision it is computed in",
                       [DECAY_BELOW_1.get(field, {field: F32_MAX})])
            if name != "rope_base":  # which must be > 1
                yield ({field: 1e-40}, f"{field}=1e-40 is below float32's smallest normal "
                                       f"number (1.2e-38), the precision it is computed in: it "
                                       f"would compute as 0", [{field: 1.2e-38}])


def _choice_rows(field, message, refused, choices, needs=None):
    """`needs`: what some choices need to pass the other checks."""
    yield ({field: refused}, f"{message}, got {refused!r}",
           [{field: c, **(needs or {}).get(c, {})} for c in choices])


# One row per check of validate() (and of check_schema, which it runs first): settings that
# break that check alone, on base_config() (which passes every check), and the one message
# that names it, so that deleting any single check fails its rows; and beside them the nearest
# settings the same check lets through, so that a bound moved by one (< for <=) fails too.
# Values are set in a plain dict, past ConfigDict's own type checks: validate() alone must
# refuse them.
INCONSISTENT = [
    ({"train.num_step": 5},
     "the config has an unknown field train.num_step (did you mean 'train.num_steps'?)", [{}]),
    ({"trian": {}}, "the config has an unknown field trian (did you mean 'train'?)", [{}]),
    ({"sample": 5}, "the config: sample must be a section, got 5",
     [{"sample": {"max_new_tokens": 5}}]),
    ({"train.num_steps": True}, "the config: train.num_steps must be of type int, got True",
     [{"train.num_steps": 1}]),
    ({"train.seed": 7.5}, "the config: train.seed must be of type int, got 7.5",
     [{"train.seed": 7}]),
    ({"reference_val_loss": "2.5"},
     "the config: reference_val_loss must be of type float, got '2.5'",
     [{"reference_val_loss": 2}, {"train.learning_rate": 1}]),  # an int is a float
    ({"model.residual": 1}, "the config: model.residual must be of type bool, got 1",
     [{"model.residual": False}]),
    ({"description": 3}, "the config: description must be of type str, got 3",
     [{"description": "3"}]),
    ({"train.seed": MISSING}, "the config lacks the field train.seed: start config files "
                              "from gpt_jax.config.base_config()", [{}]),
    ({"data": MISSING}, "the config lacks the field data: start config files from "
                        "gpt_jax.config.base_config()", [{}]),
    *_choice_rows("model.name", f"model.name must be one of {MODEL_NAMES}", "transformer",
                  MODEL_NAMES, needs={"encoder_decoder": PAIRS_SEQ2SEQ}),
    *_count_rows(),
    *_choice_rows("data.task", f"data.task must be one of {TASKS}", "tokens", TASKS,
                  needs={"pairs": PAIRS_GPT}),
    ({"model.name": "encoder_decoder"},
     "model.name=encoder_decoder reads source → target pairs: set data.task=pairs",
     [PAIRS_SEQ2SEQ]),
    ({**PAIRS_GPT, "model.name": "mlp"},
     "data.task=pairs trains model.name gpt or encoder_decoder, not 'mlp'", [PAIRS_GPT]),
    ({**PAIRS_GPT, "model.block_size": 42}, "model.block_size (42) must hold source, "
                                            "separator, target and end token: at least 43 "
                                            "(--config.model.block_size=43)",
     [PAIRS_GPT]),
    ({**PAIRS_SEQ2SEQ, "model.block_size": 10},
     "model.block_size (10) must hold the target and its end token: at least 11 "
     "(--config.model.block_size=11)",
     [PAIRS_SEQ2SEQ]),
    ({"model.n_head": 3}, "model.n_embd (32) must be divisible by model.n_head (3)",
     [{"model.n_head": 8}]),
    ({**PAIRS_SEQ2SEQ, "model.n_head": 3},
     "model.n_embd (32) must be divisible by model.n_head (3)",
     [{**PAIRS_SEQ2SEQ, "model.n_head": 8}]),
    *_range_rows("model.dropout", "model.dropout must be in [0, 1)", (-0.1, 1.0, math.nan),
                 (0.0, 0.999, 0.5)),
    *_choice_rows("model.activation", f"model.activation must be one of {tuple(ACTIVATIONS)}",
                  "swish", ACTIVATIONS),
    ({"data.max_source_len": 20}, "data.max_source_len is read by data.task=pairs only, and "
     "this run's task is text: leave it at 32", [{**PAIRS_SEQ2SEQ, "data.max_source_len": 20}]),
    ({**PAIRS_SEQ2SEQ, "data.on_device_budget_mb": 1}, "data.on_device_budget_mb is read by "
     "data.task=text only, and this run's task is pairs: leave it at 1024",
     [{"data.on_device_budget_mb": 1}]),
    ({**PAIRS_SEQ2SEQ, "model.rope_base": 500.0}, "model.rope_base is not read by the "
     "encoder–decoder, which would ignore it: leave it at 10000.0", [{"model.rope_base": 500.0}]),
    ({"model.activation": "swiglu", "model.name": "mlp"},
     "model.activation=swiglu gates a Transformer's feed-forward: the mlp model has none",
     [{"model.activation": "swiglu"}, {"model.activation": "tanh", "model.name": "mlp"}]),
    *_choice_rows("model.pos_emb", f"model.pos_emb must be one of {POS_EMBS}", "sinusoidal",
                  POS_EMBS),
    *_range_rows("model.rope_base", "model.rope_base must be a number > 1",
                 (1.0, math.nan, math.inf), (1.001, 10000.0, F32_MAX)),
    ({"model.rope_base": 1.00000001}, "model.rope_base=1.00000001 rounds to 1 in float32, the "
     "precision it is computed in: every pair would turn alike; it must be at least 1.0000001",
     [{"model.rope_base": 1.0000002}]),
    ({"model.pos_emb": "rope", "model.n_embd": 24, "model.n_head": 8},
     "model.pos_emb=rope turns pairs of channels: the head size n_embd / n_head must be even, "
     "got 3",
     [{"model.pos_emb": "rope", "model.n_embd": 16, "model.n_head": 8},
      {"model.pos_emb": "learned", "model.n_embd": 24, "model.n_head": 8}]),
    *_choice_rows("model.norm", f"model.norm must be one of {NORMS}", "batchnorm", NORMS),
    ({"model.name": "bigram", "model.pos_emb": "rope"},
     "model.pos_emb is not read by the bigram model, which would ignore it: leave it at "
     "'learned'", [{"model.pos_emb": "rope"}, {"model.name": "bigram"}]),
    # a model's unread fields (a bigram has no layers; an mlp no heads; a GPT no n-gram
    # context): the run would ignore them without a word
    ({"model.name": "bigram", "model.n_layer": 4}, "model.n_layer is not read by the bigram "
     "model, which would ignore it: leave it at 1", [{"model.n_layer": 4}]),
    ({"model.name": "mlp", "model.n_head": 8}, "model.n_head is not read by the mlp model, "
     "which would ignore it: leave it at 4", [{"model.n_head": 8}]),
    ({"model.name": "ngram", "model.n_embd": 64}, "model.n_embd is not read by the ngram model, "
     "which would ignore it: leave it at 32", [{"model.name": "mlp", "model.n_embd": 64}]),
    ({"model.context": 5}, "model.context is not read by the gpt model, which would ignore it: "
     "leave it at 3", [{"model.name": "ngram", "model.context": 5}]),
    ({"model.name": "bigram", "train.optimizer": "muon"},
     "train.optimizer=muon orthogonalizes the hidden weight matrices, and the bigram model has "
     "none (everything would be AdamW's): use train.optimizer=adamw",
     [{"model.name": "mlp", "train.optimizer": "muon"}, {"train.optimizer": "muon"}]),
    ({**PAIRS_SEQ2SEQ, "model.n_layer": 0}, "model.n_layer=0: an encoder–decoder without "
     "blocks has no cross-attention, so its decoder would never read the source: set "
     "model.n_layer >= 1", [{**PAIRS_SEQ2SEQ, "model.n_layer": 1}, {"model.n_layer": 0}]),
    ({"model.n_layer": 0, "train.optimizer": "muon"},
     "train.optimizer=muon orthogonalizes the hidden weight matrices, and the gpt model with "
     "n_layer=0 has none (everything would be AdamW's): use train.optimizer=adamw",
     [{"model.n_layer": 0}]),
    ({"model.name": "mlp", "model.qk_norm": True},
     "model.qk_norm is not read by the mlp model, which would ignore it: leave it at False",
     [{"model.qk_norm": True}, {**PAIRS_SEQ2SEQ, "model.qk_norm": True}]),
    ({"model.norm": "rmsnorm", "model.layer_norm": False},
     "model.norm=rmsnorm chooses the norms that model.layer_norm puts in: set "
     "model.layer_norm=True", [{"model.norm": "rmsnorm"}, {"model.layer_norm": False}]),
    ({"model.zero_init_proj": True, "model.projections": False, "model.ffn_mult": 1},
     "model.zero_init_proj zeroes the output projections: set model.projections=True",
     [{"model.zero_init_proj": True}, {"model.projections": False, "model.ffn_mult": 1}]),
    # a block without residual outputs its zeroed projection: the loss stayed at ln 65 with
    # a gradient norm of 0 (modern.py without residual, whose rungs drop the biases)
    ({"model.zero_init_proj": True, "model.residual": False},
     "model.zero_init_proj zeroes the output projections, and without model.residual each "
     "block then passes on nothing (no gradient reaches the kernels): set model.residual=True",
     [{"model.zero_init_proj": True}, {"model.residual": False},
      {"model.zero_init_proj": True, "model.residual": False, "model.n_layer": 0}]),
    *_range_rows("reference_val_loss", "reference_val_loss (the lecture's figure beside the "
                 "ladder's; 0: none) must be a number >= 0", (-3.0,), (1.48,)),
    *_range_rows("model.logit_softcap", "model.logit_softcap must be a number >= 0 (0 is off)",
                 (-1.0, math.nan, math.inf), (0.0, 30.0, F32_MAX)),
    *_choice_rows("model.compute_dtype", "model.compute_dtype must be float32 or bfloat16",
                  "float16", ("float32", "bfloat16")),
    *_choice_rows("model.init", f"model.init must be one of {STYLES}", "xavier", STYLES),
    ({"model.projections": False},
     "a feed-forward without projections must keep the width: set model.ffn_mult=1",
     [{"model.projections": False, "model.ffn_mult": 1},
      {"model.projections": False, "model.ffwd": False}]),
    ({"model.activation": "swiglu", "model.projections": False, "model.ffn_mult": 1},
     "a feed-forward without projections must keep the width, which SwiGLU's is not: set "
     "model.projections=True",
     [{"model.activation": "swiglu"},
      {"model.activation": "swiglu", "model.projections": False, "model.ffwd": False}]),
    *_range_rows("train.learning_rate", "train.learning_rate must be a positive number",
                 (0.0, -1e-3, math.nan, math.inf), (1e-30, 1e-3, 1e-3, 99.0)),
    *_range_rows("train.min_learning_rate", "train.min_learning_rate must be a number >= 0",
                 (-1e-4, math.nan, math.inf), (0.0, 1e-4, F32_MAX)),
    *_choice_rows("train.lr_schedule", "train.lr_schedule must be constant or cosine", "linear",
                  ("constant", "cosine")),
    *_range_rows("train.seed", "train.seed must be in [0, 2^32 - 1]", (-1, 2**32),
                 (0, 2**32 - 1)),
    *_range_rows("train.grad_clip", "train.grad_clip must be >= 0", (-1.0, math.nan, math.inf),
                 (0.0, 1.0, F32_MAX)),
    *_range_rows("train.weight_decay", "train.weight_decay must be a number >= 0",
                 (-0.1, math.nan, math.inf), (0.0, 0.1, 999.0)),
    ({"train.weight_decay": 1000.0}, "train.weight_decay × train.learning_rate = 1, and each "
     "step multiplies the weights by 1 minus that: it must be < 1 (usually about 1e-4); lower "
     "train.weight_decay or train.learning_rate",
     [{"train.weight_decay": 1000.0, "train.learning_rate": 9.99e-4}]),
    ({"train.optimizer": "muon", "train.muon_weight_decay": 0.1, "train.muon_learning_rate": 10.0},
     "train.muon_weight_decay × train.muon_learning_rate = 1, and each step multiplies the "
     "weights by 1 minus that: it must be < 1 (usually about 1e-4); lower "
     "train.muon_weight_decay or train.muon_learning_rate",
     [{"train.optimizer": "muon", "train.muon_weight_decay": 0.1,
       "train.muon_learning_rate": 9.9}]),
    *[row for beta in ("beta1", "beta2")
      for row in _range_rows(f"train.{beta}", f"train.{beta} must be in [0, 1)",
                             (-0.1, 1.0, math.nan), (0.0, 0.999999, 0.5))],
    *_choice_rows("train.optimizer", f"train.optimizer must be one of {OPTIMIZERS}", "sgd",
                  OPTIMIZERS),
    *_range_rows("train.muon_learning_rate", "train.muon_learning_rate must be a positive number",
                 (0.0, -0.02, math.nan, math.inf), (1e-30, 0.02, 0.02, F32_MAX)),
    *_range_rows("train.muon_weight_decay", "train.muon_weight_decay must be a number >= 0",
                 (-0.1, math.nan, math.inf), (0.0, 0.1, 49.0)),
    *_range_rows("train.chunk_seconds", "train.chunk_seconds must be a positive number",
                 (0.0, -1.0, math.nan, math.inf), (1e-300, 2.0, 2.0, 1e300)),
    *_range_rows("train.muon_ns_steps", "train.muon_ns_steps must be an integer in [1, 20]",
                 (0, -1, 21), (1, 5, 20)),
    # numbers: what float32, the precision of the computation, cannot hold
    *_float32_rows(),
    *[({field: 0.99999998}, f"{field}=0.99999998 rounds to 1 in float32, the precision it is "
                            f"computed in: it must be in [0, 1), at most 0.99999994",
       [{field: 0.99999994}]) for field in ("model.dropout", "train.beta1", "train.beta2")],
    ({**PAIRS_SEQ2SEQ, "data.val_path": "held_out.tsv"},
     "data.val_path holds out pairs of a data.path of your own; the shipped dates task "
     "(data.path=\"\") has its own held-out dates: set data.path too, or drop data.val_path",
     [PAIRS_SEQ2SEQ, {**PAIRS_SEQ2SEQ, "data.val_path": "held_out.tsv",
                      "data.path": "pairs.tsv"}]),
]


def _with(config: ml_collections.ConfigDict, overrides: dict) -> ml_collections.ConfigDict:
    """A copy of `config` with {'train.seed': -1}-style overrides set as plain values."""
    tree = config.to_dict()
    for dotted, value in overrides.items():
        *sections, name = dotted.split(".")
        node = functools.reduce(lambda n, s: n[s], sections, tree)
        if value is MISSING:
            del node[name]
        else:
            node[name] = value
    return ml_collections.ConfigDict(tree)


@pytest.mark.parametrize("overrides, message, accepted", INCONSISTENT,
                         ids=[",".join(f"{k}={v!r}" if v is not MISSING else f"{k} missing"
                                       for k, v in o.items()) for o, _, _ in INCONSISTENT])
def test_inconsistent_settings_are_refused(overrides, message, accepted):
    for nearest in [{}, *accepted]:
        validate(_with(base_config(), nearest))  # the base, and what this check lets through
    with pytest.raises(UserError, match=f"^{re.escape(message)}$"):
        validate(_with(base_config(), overrides))


@pytest.mark.parametrize("spec, message", [
    ("configs/nope.py", "config file not found"),
    ("tests/config_with_typo.py", r"sets an unknown field 'n_layers' \(did you mean 'n_layer'\?\)"),
    ("configs/lecture.py:nope", "unknown lecture step 'nope'"),
    ("configs/modern.py:nope", "unknown modern rung 'nope'"),
    ("configs/bigram.py:x", "takes no ':variant'"),
    ("pyproject.toml", "failed to load: SyntaxError"),
    ("gpt_jax/__init__.py", "has no get_config"),
])
def test_bad_config_files_are_named(spec, message):
    with pytest.raises(UserError, match=message):
        load_config_file(str(REPO / spec))


def test_short_cpu_run_decays_its_learning_rate_by_its_last_step():
    from gpt_jax.optim import learning_rate_schedule

    full = load_config_file(str(REPO / "configs/shakespeare_char_cpu.py"))
    short = load_config_file(str(REPO / "configs/shakespeare_char_cpu.py:short"))
    assert short.model == full.model
    end = short.train.num_steps
    assert end < full.train.num_steps
    assert short.train.learning_rate >= full.train.learning_rate  # a shorter horizon
    assert float(learning_rate_schedule(short.train)(end)) == pytest.approx(
        short.train.min_learning_rate, rel=1e-6)
    assert float(learning_rate_schedule(full.train)(end)) > 5 * full.train.min_learning_rate
    with pytest.raises(UserError, match="unknown variant 'long'"):
        load_config_file(str(REPO / "configs/shakespeare_char_cpu.py:long"))


# Each modern rung's one change, written out (not computed by gpt_jax/modern_changes.py).
RUNG_CHANGES = {
    "rope": "model.pos_emb: 'learned' → 'rope'",
    "rmsnorm": "model.norm: 'layernorm' → 'rmsnorm'",
    "qk_norm": "model.qk_norm: False → True",
    "relu2": "model.activation: 'gelu' → 'relu2'",
    "swiglu": "model.activation: 'relu2' → 'swiglu'",
    "no_bias": "model.bias: True → False",
    "zero_init": "model.zero_init_proj: False → True",
    "untied": "model.tie_embeddings: True → False",
    "softcap": "model.logit_softcap: 0.0 → 30.0",
    "muon": "train.optimizer: 'adamw' → 'muon'",
}
MODERN_CPU = {  # configs/shakespeare_char_cpu.py:modern against the CPU GPT, written out
    "model": dict(pos_emb="rope", norm="layernorm", qk_norm=True, activation="swiglu",
                  bias=True, zero_init_proj=True, tie_embeddings=True, logit_softcap=30.0),
    "train": dict(optimizer="muon", cpu_library_products=False),
}


def test_every_modern_rung_adds_its_own_change_to_the_one_before():
    from gpt_jax.run_files import config_differences

    assert [name for name, _ in ladder_steps.MODERN_STEPS] == list(RUNG_CHANGES)
    previous = load_config_file(str(REPO / "configs/shakespeare_char_cpu.py"))
    for name, spec in ladder_steps.MODERN_STEPS:
        config = load_config_file(str(REPO / f"configs/{spec}"))
        # The Muon rung also compiles its step with XLA's own products (xla_options.py):
        # how the products are computed, not what, so no change of the model or its training.
        changed = [d for d in config_differences(previous, config) if not d.startswith(
            ("description", "reference_val_loss", "train.cpu_library_products"))]
        assert changed == [RUNG_CHANGES[name]], name
        previous = config


@pytest.mark.parametrize("base", ["shakespeare_char_cpu.py", "shakespeare_char.py"])
def test_modern_variants_are_their_base_with_exactly_the_kept_changes(base):
    plain = load_config_file(str(REPO / "configs" / base))
    modern = load_config_file(str(REPO / "configs" / f"{base}:modern"))
    for section, fields in MODERN_CPU.items():
        plain[section].update(fields)
    assert modern.model == plain.model and modern.train == plain.train  # the same budget too


def test_seq2seq_block_sizes_follow_an_override_of_the_pair_lengths():
    """The ladder's --seq2seq overrides reach both steps: a longer data.max_source_len must
    widen the GPT's window and leave the encoder–decoder's target window as it is."""
    for spec, source, target, block_size in (("seq2seq.py", 40, 10, 11),
                                             ("seq2seq.py", 32, 20, 21),
                                             ("seq2seq.py:gpt", 40, 10, 51),
                                             ("seq2seq.py:gpt", 32, 20, 53)):
        config = load_config_file(str(REPO / f"configs/{spec}"))
        config.data.max_source_len, config.data.max_target_len = source, target
        validate(config)
        assert config.model.block_size == block_size, spec
    config = load_config_file(str(REPO / "configs/seq2seq.py:gpt"))
    config.model.block_size = 60  # set on its own, it stays
    config.data.max_source_len = 40
    assert config.model.block_size == 60


def test_data_paths_are_stored_absolute(tmp_path, monkeypatch):
    """A run's config.json names its data from any working folder: the ladder, rerun from
    another folder with the same relative data.path, read back runs trained on other data."""
    from gpt_jax.config import anchor_data_paths

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = load_config_file(str(REPO / "configs/seq2seq.py"))
    config.data.path, config.data.val_path = "pairs.tsv", "~/held_out.tsv"
    anchor_data_paths(config)
    assert config.data.path == str(tmp_path / "pairs.tsv")
    assert config.data.val_path == str(tmp_path / "home" / "held_out.tsv")
    shipped = load_config_file(str(REPO / "configs/bigram.py"))
    anchor_data_paths(shipped)
    assert shipped.data.path == ""  # the shipped corpus stays the shipped corpus


def test_a_warmup_as_long_as_the_run_is_warned_of_not_refused():
    config = load_config_file(str(REPO / "configs/seq2seq.py"))  # warmup_steps=100
    assert doubts(config) == []
    config.train.num_steps = 100  # a quick try of the config: the rate rises to its last step
    validate(config)
    assert doubts(config) == [
        "train.warmup_steps (100) is not below train.num_steps (100): the learning rate rises "
        "for the whole run and never reaches train.learning_rate"]
    config.train.num_steps = 101
    assert doubts(config) == []


@pytest.mark.parametrize("overrides, doubt", [
    ({"train.muon_learning_rate": 0.05}, "train.muon_learning_rate (0.05) is read with "
     "train.optimizer='muon' only, and this run has 'adamw': it changes nothing"),
    ({"train.lr_schedule": "constant", "train.min_learning_rate": 1e-5},
     "train.min_learning_rate (1e-05) is read with train.lr_schedule='cosine' only, and this "
     "run has 'constant': it changes nothing"),
    ({"model.rope_base": 500.0}, "model.rope_base (500.0) is read with model.pos_emb='rope' "
     "only, and this run has 'learned': it changes nothing"),
    ({"model.ffwd": False, "model.activation": "gelu"}, "model.activation ('gelu') is read with "
     "model.ffwd=True only, and this run has False: it changes nothing"),
    ({"model.dropout": 0.0, "model.fused_dropout": True}, "model.fused_dropout (True) is read "
     "with model.dropout > 0 only, and this run has 0.0: it changes nothing"),
    ({**PAIRS_GPT, "model.fused_decode": True}, "model.fused_decode (True) is read by a text "
     "run's sampler; the GPT on pairs re-reads its window for every token (translation.py): it "
     "changes nothing"),
    ({"model.n_layer": 0, "model.dropout": 0.1, "model.qk_norm": True, "model.pos_emb": "rope"},
     "model.n_layer=0: a GPT without blocks does not read model.qk_norm, model.dropout, "
     "model.pos_emb='rope' (no queries or keys to turn: as 'none'): they change nothing"),
    ({"model.n_layer": 0, "model.compute_dtype": "bfloat16"},  # the head computes in float32
     "model.n_layer=0: a GPT without blocks does not read model.compute_dtype: they change "
     "nothing"),
    ({"model.query_chunk": 8}, "model.query_chunk (8) is not below model.block_size (8): one "
     "chunk, the whole block: it changes nothing"),
    # its positions past the target are never read (its memory was counted for them: a
    # false refusal at 5,000); a warning, so that runs trained so stay restorable
    ({**PAIRS_SEQ2SEQ, "model.block_size": 12}, "model.block_size (12) of an encoder–decoder: "
     "it reads the target and its end token, data.max_target_len + 1 = 11 positions; the rest "
     "of its position table is never read"),
    ({**PAIRS_SEQ2SEQ, "sample.max_new_tokens": 2}, "sample.max_new_tokens (2) is read by a "
     "pairs run as on (> 0) or off (0): its sample writes whole targets, of at most "
     "data.max_target_len characters"),
    ({"model.pos_emb": "rope", "model.block_size": 1}, "model.pos_emb='rope' with "
     "model.block_size=1: every query and key is at position 0, turned by no angle: it changes "
     "nothing (as 'none')"),
    # at 1e-30 the loss stayed at ln 65 for good, without a word
    ({"model.logit_softcap": 1.0}, "model.logit_softcap (1.0) keeps every logit within ±1.0: "
     "no token can be more than e^2 = 7.39 times as likely as another, so the model can hardly "
     "be sure of a next token (the recipes cap at 15 to 30)"),
])
def test_a_field_whose_switch_is_off_is_warned_of(overrides, doubt):
    """Set with their switch off, these fields change nothing: a warning, not a refusal (the
    Muon config trained with AdamW is a fair ablation)."""
    config = base_config()
    apply_overrides(config, overrides)
    validate(config)
    assert doubts(config) == [doubt]


def test_a_saved_run_with_fields_its_model_ignored_stays_restorable(tmp_path):
    """Runs saved before unread fields were refused (a bigram with n_embd=64 trained as a
    bigram) load with those fields at their defaults, which is how they trained."""
    from gpt_jax import run_files

    config = load_config_file(str(REPO / "configs/bigram.py"))
    config.model.n_embd, config.model.n_layer = 64, 6
    with pytest.raises(UserError, match="model.n_embd is not read by the bigram model"):
        validate(config)
    run_files.save_config(tmp_path, config)
    loaded = run_files.load_config(tmp_path)
    validate(loaded)
    assert loaded.model == load_config_file(str(REPO / "configs/bigram.py")).model
