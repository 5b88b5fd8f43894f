import pytest

from conftest import REPO
from gpt_jax.config import apply_overrides, load_config_file, validate
from gpt_jax.errors import UserError

LADDER = ["bigram", "head", "multihead", "ffwd", "residual", "layernorm", "gpt_cpu", "gpt"]
FILES = ["configs/bigram.py", "configs/shakespeare_char.py", "configs/shakespeare_char_cpu.py",
         "configs/shakespeare_char_cpu.py:short"]


@pytest.mark.parametrize("spec", FILES + [f"configs/ladder.py:{s}" for s in LADDER])
def test_every_config_loads_validates_and_states_its_reference(spec):
    config = load_config_file(str(REPO / spec))
    validate(config)
    assert config.reference_val_loss > 0 and config.description
    apply_overrides(config, {"train.num_steps": 200})
    assert config.train.num_steps == 200


def test_ladder_steps_grow_one_idea_at_a_time():
    m = {s: load_config_file(str(REPO / f"configs/ladder.py:{s}")).model
         for s in LADDER}
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


@pytest.mark.parametrize("field, value, message", [
    ("model.n_head", 3, r"n_embd \(32\) must be divisible by model.n_head \(3\)"),
    ("model.block_size", 0, "block_size must be >= 1"),
    ("model.dropout", 1.0, r"dropout must be in \[0, 1\)"),
    ("model.n_embd", -4, "n_embd must be >= 1"),
    ("train.batch_size", 0, "batch_size must be >= 1"),
])
def test_inconsistent_settings_are_refused(field, value, message):
    config = load_config_file(str(REPO / "configs/ladder.py:layernorm"))
    apply_overrides(config, {field: value})
    with pytest.raises(UserError, match=message):
        validate(config)


@pytest.mark.parametrize("spec, message", [
    ("configs/nope.py", "config file not found"),
    ("tests/config_with_typo.py", r"sets an unknown field 'n_layers' \(did you mean 'n_layer'\?\)"),
    ("configs/ladder.py:nope", "unknown ladder step 'nope'"),
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
