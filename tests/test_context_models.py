"""The models before attention: the n-gram table and the concatenated-embedding MLP, and how
their parameters grow with the context next to a GPT's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO, run_python, tiny_config
from gpt_jax.config import load_config_file, validate
from gpt_jax.errors import UserError
from gpt_jax.generation import decode_step, prefill, sample_texts
from gpt_jax.metrics import read_metrics
from gpt_jax.models import build_model
from gpt_jax.models.ngram import require_table_fits
from gpt_jax.restore import load_run
from gpt_jax.state import count_params, param_shapes
from gpt_jax.trainer import train_and_evaluate

V, T = 65, 8


def window_config(name, context, **model):
    mlp_sizes = dict(n_embd=8, mlp_hidden=32) if name == "mlp" else {}
    return tiny_config(name=name, context=context, **mlp_sizes, **model)


def n_params(config, block_size=T):
    return count_params(param_shapes(build_model(config.model, V, check_memory=False),
                                     block_size))


@pytest.fixture(scope="module", params=["ngram", "mlp"])
def window_model(request):
    """A trigram table or an MLP over the last 3 characters, and its params."""
    model = build_model(window_config(request.param, 2 if request.param == "ngram" else 3).model,
                        V)
    return model, model.init(jax.random.key(0), jnp.zeros((1, T), jnp.int32))["params"]


@pytest.mark.parametrize("context", [1, 2, 3, 9])
def test_ngram_has_exactly_vocab_to_the_context_times_vocab_parameters(context):
    """Counted from shapes alone: the 10-gram's 65^10 parameters are never allocated."""
    assert n_params(window_config("ngram", context)) == V**context * V


def test_mlp_parameters_grow_by_the_same_amount_per_character_of_context():
    counts = [n_params(window_config("mlp", k)) for k in range(1, 7)]
    assert set(np.diff(counts)) == {8 * 32}  # one (n_embd, mlp_hidden) block per character


def test_gpt_parameters_depend_on_the_context_only_through_the_positional_table():
    """Every weight but the positional table has the same shape at any block_size, and that
    table has one n_embd row per position."""
    shapes = {}
    for block_size in (8, 16, 64, 256):
        params = param_shapes(build_model(tiny_config(block_size=block_size).model, V),
                              block_size)
        pos = params.pop("position_embedding_table")["embedding"]
        assert pos.shape == (block_size, 16)
        shapes[block_size] = jax.tree.map(lambda p: p.shape, params)
    assert all(s == shapes[8] for s in shapes.values())


def test_mlp_position_t_reads_exactly_the_last_three_inputs():
    """d logits_t / d embedding_s is exactly 0 for every later s (so is the loss at t's
    gradient) and for every s before the window, and non-zero for t-2 <= s <= t."""
    model = build_model(window_config("mlp", 3).model, V)
    variables = model.init(jax.random.key(0), jnp.zeros((1, T), jnp.int32))
    idx = jax.random.randint(jax.random.key(1), (1, T), 0, V)
    logits = lambda perturbations: model.apply(
        {"params": variables["params"], "perturbations": perturbations}, idx)
    zeros = jax.tree.map(jnp.zeros_like, variables["perturbations"])
    jac = np.asarray(jax.jacobian(logits)(zeros)["embeddings"])  # (1, T, V, 1, T, E)
    reads_TxT = np.abs(jac[0, :, :, 0]).sum(axis=(1, 3)) != 0  # [t, s]: logits_t read input s
    np.testing.assert_array_equal(reads_TxT, np.tri(T, dtype=bool) & ~np.tri(T, k=-3, dtype=bool))


def test_logits_at_t_change_with_exactly_the_last_context_tokens(window_model):
    """Changing the token at s changes the logits at t if and only if t-K < s <= t: the
    model sees neither the future nor anything before its window."""
    model, params = window_model
    forward = jax.jit(lambda idx: model.apply({"params": params}, idx))
    idx = np.random.default_rng(0).integers(0, V, (1, T))
    logits_TxV = np.asarray(forward(idx))[0]
    changed_TxT = np.zeros((T, T), bool)  # [t, s]: the logits at t moved when s changed
    for s in range(T):
        other = idx.copy()
        other[0, s] = (idx[0, s] + 1) % V
        changed_TxT[:, s] = np.any(np.asarray(forward(other))[0] != logits_TxV, axis=-1)
    K = model.context
    np.testing.assert_array_equal(changed_TxT, np.tri(T, dtype=bool) & ~np.tri(T, k=-K, dtype=bool))


def test_cached_decode_equals_the_full_forward(window_model):
    """Prefill a prompt, then add one token at a time: the logits of each new position equal
    the uncached model's, whose position t sees nothing after t."""
    model, params = window_model
    seq = np.random.default_rng(1).integers(0, V, (2, T)).astype(np.int32)
    full = np.asarray(model.apply({"params": params}, seq))
    step = jax.jit(lambda cache, token, pos: decode_step(model, params, cache, token, pos))
    for prompt_len in (1, 4):
        window = np.where(np.arange(T) < prompt_len, seq, 0).astype(np.int32)
        logits, cache = prefill(model, params, window, prompt_len)
        np.testing.assert_allclose(logits, full[:, prompt_len - 1], rtol=1e-5, atol=1e-6)
        for pos in range(prompt_len, T):
            logits, cache = step(cache, seq[:, pos], pos)
            np.testing.assert_allclose(logits, full[:, pos], rtol=1e-5, atol=1e-6)


def test_a_table_too_large_for_memory_is_refused_with_its_numbers():
    with pytest.raises(UserError, match=r"n-gram table for n=11 has 65\^10·65 = 8\.8e19 "
                                        r"parameters \(2\.6e12 GiB to train.*\); .* has"):
        build_model(window_config("ngram", 10).model, V)
    twenty_four_gib = (24 * 2**30, "this machine has")
    require_table_fits(V, 3, twenty_four_gib)  # 65^4 · 32 bytes = 0.5 GiB
    with pytest.raises(UserError, match=r"n=6 has 65\^5·65 = 7\.5e10 parameters \(2,247 GiB "
                                        r"to train: params, grads, Adam state and their "
                                        r"updates\); this machine has 24 GiB: lower "
                                        r"model.context"):
        require_table_fits(V, 5, twenty_four_gib)
    with pytest.raises(UserError, match=r"n=5 .* \(34 GiB to train"):
        require_table_fits(V, 4, twenty_four_gib)  # the table that ran out of memory here


@pytest.mark.parametrize("spec", ["configs/ngram.py", "configs/mlp.py"])
def test_config_files_load_and_validate(spec):
    config = load_config_file(str(REPO / spec))
    validate(config)
    assert config.model.name in ("ngram", "mlp") and config.reference_val_loss > 0


@pytest.mark.parametrize("name", ["ngram", "mlp"])
def test_trains_checkpoints_and_samples_like_every_model(tmp_path, name):
    config = window_config(name, 2)
    config.train.update(num_steps=10, learning_rate=1e-2)
    train_and_evaluate(config, tmp_path)
    first, last = read_metrics(tmp_path)[0], read_metrics(tmp_path)[-1]
    assert (first["step"], last["step"]) == (0, 10) and last["val_loss"] < first["val_loss"]
    run = load_run(tmp_path)
    text = sample_texts(run.model, run.params, run.tokenizer, T, "To be", max_new_tokens=20)[0]
    assert len(text) == 20


def test_report_tabulates_parameters_without_training(tmp_path):
    result = run_python(["-m", "gpt_jax.context_report", f"--workdir={tmp_path}", "--steps=0"])
    assert result.returncode == 0, result.stderr
    table = (tmp_path / "context.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "†" in line]
    assert [row.split(" | ")[:2] for row in rows] == [
        ["| 16", "6.6e30 †"], ["| 32", "6.7e59 †"], ["| 64", "6.9e117 †"], ["| 256", "8.3e465 †"]]
    assert "| 1 | 4,225 |" in table and "| 8 | 2.1e16 |" in table  # 65^9, from its shape


@pytest.mark.parametrize("context", [1, 3, 7])
def test_memory_counts_the_mlp_as_its_shapes_do(context):
    """memory.param_count counts the MLP from its formula (tracing a context of a million
    would take minutes): it must agree with the shapes."""
    from gpt_jax import memory

    config = window_config("mlp", context)
    assert memory.param_count(config, V) == n_params(config)


@pytest.mark.parametrize("context", [1, 8, 64])
def test_every_family_of_the_report_builds_a_valid_config(context):
    """The report set model.context on the GPT too, which reads none: once such fields were
    refused, `context_report --steps=1` stopped at the GPT after training every other row."""
    from gpt_jax.config import doubts
    from gpt_jax.context_report import CONFIG_FILES, family_config

    for family in CONFIG_FILES:
        config = family_config(family, context)
        validate(config)
        assert config.model.block_size == context and doubts(config) == []
        # the config file's own words ("trigram table", "block 64") name what this run sets
        assert config.description.endswith(f"this run sets model.block_size={context}" + (
            "" if family == "gpt" else f", model.context={context}") + ")"), config.description


def test_every_run_of_the_report_trains_as_many_tokens_a_step():
    """A wider context, fewer blocks: each family and context trains TOKENS_PER_STEP = 768
    tokens a step (the same batch for all would give the wide contexts more text)."""
    from gpt_jax.context_report import CONFIG_FILES, TOKENS_PER_STEP, run_config

    assert TOKENS_PER_STEP == 768
    for family in CONFIG_FILES:
        for context, batch in ((1, 768), (8, 96), (64, 12)):
            config = run_config(family, context, steps=3)
            assert (config.model.block_size, config.train.batch_size) == (context, batch)
            assert config.train.num_steps == config.train.eval_interval == 3


def test_the_report_refuses_a_run_trained_with_other_settings(tmp_path, monkeypatch):
    """A config file edited since (here: its learning rate) had its earlier run read back into
    context.md as if trained with the settings the report names."""
    from gpt_jax import context_report
    from gpt_jax.errors import UserError

    first = context_report.val_loss("ngram", 1, 2, tmp_path)
    assert context_report.val_loss("ngram", 1, 2, tmp_path) == first  # read back
    own = context_report.family_config

    def edited(family, context):
        config = own(family, context)
        config.train.learning_rate *= 5
        return config

    monkeypatch.setattr(context_report, "family_config", edited)
    with pytest.raises(UserError, match=r"ngram_context1_2steps holds a run of the report "
                                        r"trained with other settings \(train.learning_rate: "):
        context_report.val_loss("ngram", 1, 2, tmp_path)


def test_the_report_s_val_losses_are_per_character(tmp_path, monkeypatch):
    """Each trained row's loss, in a column that names its unit."""
    from gpt_jax import context_report

    monkeypatch.setattr(context_report, "val_loss", lambda family, c, steps, workdir: 1.5)
    table = context_report.report(65, 3, tmp_path)
    assert "| model | context | parameters | val loss (nats per character) |" in table
    rows = [line for line in table.splitlines() if line.endswith("| 1.5000 |")]
    assert len(rows) == sum(map(len, context_report.TRAINED.values())) > 0
