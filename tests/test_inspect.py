"""`python -m gpt_jax.inspect`: the attention weights the heads sow, the loss by position, and
the pictures and index.html of a bigram and a GPT run.
Legend: B batch, L layers, H heads, T query time, S key time, C channels, D head size."""

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import run_python, tiny_config
from gpt_jax.inspect import (
    forward_with_attention,
    inspection_model,
    position_losses,
    stack_layers,
    validation_tokens,
)
from gpt_jax.models import build_model
from gpt_jax.models.attention import MultiHeadAttention
from gpt_jax.models.encoder_decoder import EncoderDecoder, EncoderDecoderConfig
from gpt_jax.models.gpt import GPTConfig
from gpt_jax.restore import load_run
from gpt_jax.tokenizer import CharTokenizer
from gpt_jax.trainer import train_and_evaluate

T = 8  # tiny_config's block


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A bigram and a GPT trained long enough for the GPT to use its context (~10 s)."""
    workdirs = {}
    for name, steps in (("bigram", 100), ("gpt", 300)):
        config = tiny_config(name=name)
        config.train.update(dict(num_steps=steps, learning_rate=1e-2, batch_size=32,
                                 eval_interval=steps, checkpoint_every=steps))
        workdirs[name] = tmp_path_factory.mktemp(name)
        train_and_evaluate(config, workdirs[name])
    return workdirs


def _init(model, *inputs):
    return model.init(jax.random.key(0), *inputs)["params"]


def test_causal_weights_are_zero_above_the_diagonal_and_rows_sum_to_one():
    model = build_model(tiny_config(init="torch").model, 20)
    idx_1xT = jax.random.randint(jax.random.key(1), (1, T), 0, 20)
    _, sown = forward_with_attention(model, _init(model, idx_1xT), idx_1xT)
    w_LxHxTxT = stack_layers(sown)["block/sa"]
    assert w_LxHxTxT.shape == (2, 2, T, T)
    future_TxT = np.triu(np.ones((T, T), bool), k=1)
    assert np.all(w_LxHxTxT[..., future_TxT] == 0)  # exactly: -inf before the softmax
    assert np.all(w_LxHxTxT[..., ~future_TxT] > 0)
    np.testing.assert_allclose(w_LxHxTxT.sum(-1), 1, rtol=1e-6)


def test_query_chunks_are_computed_whole_for_inspection():
    model = build_model(tiny_config(query_chunk=3).model, 20)
    idx_1xT = jax.random.randint(jax.random.key(1), (1, T), 0, 20)
    params = _init(model, idx_1xT)
    whole = inspection_model(model)
    assert whole.config.query_chunk == 0
    logits, sown = forward_with_attention(whole, params, idx_1xT)
    np.testing.assert_allclose(logits, model.apply({"params": params}, idx_1xT), atol=1e-5)
    assert stack_layers(sown)["block/sa"].shape == (2, 2, T, T)


def test_encoder_attends_both_ways_decoder_causally_and_padding_gets_nothing():
    config = EncoderDecoderConfig(vocab_size=12, source_len=6, block_size=5, n_embd=16,
                                  n_head=2, n_layer=2, init="torch")
    model = EncoderDecoder(config)
    source_1xS = jnp.array([[5, 6, 7, 8, 0, 0]])  # 4 characters, 2 of padding
    target_1xT = jnp.array([[1, 9, 10, 11, 3]])
    _, sown = forward_with_attention(model, _init(model, source_1xS, target_1xT), source_1xS,
                                     target_1xT)
    maps = stack_layers(sown)
    assert set(maps) == {"encoder/sa", "decoder/sa", "decoder/cross"}
    encoder, decoder, cross = maps["encoder/sa"], maps["decoder/sa"], maps["decoder/cross"]
    assert encoder.shape == (2, 2, 6, 6) and cross.shape == (2, 2, 5, 6)
    assert np.all(encoder[:, :, :4, :4][..., np.triu(np.ones((4, 4), bool), k=1)] > 0)
    assert np.all(encoder[..., 4:] == 0) and np.all(cross[..., 4:] == 0)
    assert np.all(decoder[..., np.triu(np.ones((5, 5), bool), k=1)] == 0)
    for w in maps.values():
        np.testing.assert_allclose(w.sum(-1), 1, rtol=1e-6)


def test_weights_times_values_are_the_heads_output():
    config = GPTConfig(vocab_size=20, block_size=T, n_embd=16, n_head=2, projections=False,
                       init="torch")
    attention = MultiHeadAttention(config)
    x_BxTxC = jax.random.normal(jax.random.key(2), (3, T, 16))
    params = _init(attention, x_BxTxC)
    out_BxTxHD, sown = forward_with_attention(attention, params, x_BxTxC)
    (w_BxHxTxS,) = sown.values()
    v_BxSxHxD = jnp.einsum("bsc,chd->bshd", x_BxTxC, params["heads"]["value"]["kernel"])
    expected_BxTxHxD = jnp.einsum("bhts,bshd->bthd", w_BxHxTxS, v_BxSxHxD)
    np.testing.assert_allclose(out_BxTxHD, expected_BxTxHxD.reshape(3, T, -1), atol=1e-5)


def test_loss_by_position_is_flat_for_the_bigram_and_falls_with_attention(runs):
    losses = {}
    for name, workdir in runs.items():
        run = load_run(workdir)
        tokens_N, why = validation_tokens(run.config, run.tokenizer)
        assert tokens_N is not None, why
        losses[name], n = position_losses(run.model, run.params, tokens_N, T, 2048,
                                             run.tokenizer.vocab_size)
        assert n == 2048 and losses[name].shape == (T,)
        # exactly as many windows (513 read 1,024), also where stretches of them would overlap
        for tokens, blocks in ((tokens_N, 1), (tokens_N, 513), (tokens_N[:T + 300], 290)):
            assert position_losses(run.model, run.params, tokens, T, blocks,
                                   run.tokenizer.vocab_size)[1] == blocks
        # and their mean is over those windows: 100 = every window of T + 100 tokens once,
        # in batches of 64 (the second padded with 28 repeats, which count nowhere)
        mean_T, n = position_losses(run.model, run.params, tokens_N[:T + 100], T, 100,
                                    run.tokenizer.vocab_size)
        windows = np.stack([tokens_N[s:s + T + 1] for s in range(100)]).astype(np.int32)
        logits = np.asarray(run.model.apply({"params": run.params}, windows[:, :-1]),
                            np.float64)
        log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        by_hand_T = -np.take_along_axis(log_p, windows[:, 1:, None], -1)[..., 0].mean(0)
        assert n == 100
        np.testing.assert_allclose(mean_T, by_hand_T, rtol=1e-5)
    bigram, gpt = losses["bigram"], losses["gpt"]
    # The bigram sees one character anywhere: only the few characters at the ends of each
    # stretch of windows differ between positions.
    assert bigram.max() - bigram.min() < 0.02, bigram
    assert gpt[0] - gpt[1] > 0.1 and gpt[1] > gpt[2:].mean(), gpt
    assert np.polyfit(np.arange(T), gpt, 1)[0] < 0, gpt


def test_missing_data_is_a_note_not_an_error(tmp_path):
    config = tiny_config()
    config.data.path = str(tmp_path / "gone.txt")
    tokens, why = validation_tokens(config, CharTokenizer(list("abc")))
    assert tokens is None and "not found" in why


def _inspect(workdir, *args):
    return run_python(["-m", "gpt_jax.inspect", f"--workdir={workdir}", *args])


def test_an_out_folder_of_one_s_own_is_refused_and_left_as_it_was(runs, tmp_path):
    """inspect replaces index.html and its PNGs: a site's own page (deleted without a word),
    the run's folder or / were taken as --out. Its own folder, written again, is not refused."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>my own page</h1>")
    (site / "attention.png").write_text("mine")
    for out, first in ((site, "index.html"), (runs["gpt"], "checkpoints")):
        result = _inspect(runs["gpt"], "--prompt=ab", f"--out={out}")
        assert result.returncode == 2 and result.stderr.startswith(
            f"error: --out={out} holds files that inspect did not write (such as "
            f"'{first}'), which it would replace"), result.stderr
    assert (site / "index.html").read_text() == "<h1>my own page</h1>"
    assert (site / "attention.png").read_text() == "mine"
    # its own: a page it wrote (its tag; before the tag, its title and style) with its
    # pictures, or the pictures an inspection stopped early left without the page
    from gpt_jax.inspect import GENERATOR, not_written_by_inspect

    own = tmp_path / "own"
    own.mkdir()
    (own / "attention.png").write_bytes(b"")
    (own / "attention_encoder_sa.png").write_bytes(b"")
    assert not_written_by_inspect(own) is None
    for page in (GENERATOR, "<title>Inside run</title><style>figcaption, .note {}</style>"):
        (own / "index.html").write_text(page)
        assert not_written_by_inspect(own) is None
    (own / "notes.txt").write_text("mine")
    assert not_written_by_inspect(own) == "notes.txt"


@pytest.mark.parametrize("name", ["bigram", "gpt"])
def test_command_writes_every_picture_it_lists(runs, tmp_path, name):
    result = _inspect(runs[name], "--prompt=ROMEO:\nO", f"--out={tmp_path}")
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    listed = re.findall(r'<img src="([^"]+)"', page)
    for file in listed:
        assert (tmp_path / file).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (tmp_path / file).stat().st_size < 200_000
    assert sorted(listed) == sorted(p.name for p in tmp_path.glob("*.png"))
    expected = {"embeddings.png", "position_loss.png", "next_char.png"}
    expected |= {"bigram_table.png"} if name == "bigram" else {"attention.png"}
    assert set(listed) == expected
    assert ("has no attention" in page) == (name == "bigram")
    assert "ROMEO:⏎O" in page


@pytest.mark.parametrize("args, message", [
    (["--prompt=ROMEO~"], "error: character '~' is not in the vocabulary"),
    (["--prompt=" + "a" * (T + 1)], f"error: the prompt has {T + 1} characters, more than the "
                                    f"run's block of {T}"),
])
def test_bad_prompts_are_one_line(runs, tmp_path, args, message):
    result = _inspect(runs["gpt"], *args, f"--out={tmp_path}")
    assert result.returncode == 2 and result.stderr.startswith(message), result.stderr
    assert result.stderr.count("\n") == 1 and not list(tmp_path.iterdir())


def test_workdir_without_checkpoint_is_one_line(tmp_path):
    (tmp_path / "config.json").write_text(tiny_config().to_json())
    (tmp_path / "vocab.json").write_text('{"chars": ["a", "b"]}')
    result = _inspect(tmp_path, "--prompt=ab")
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"error: workdir {Path(tmp_path).absolute()} has no checkpoints " \
                            f"yet\n"


def test_the_default_windows_shrink_with_a_large_vocabulary():
    """The loss by position costs tokens × vocabulary: with 1.1 million characters the default
    2^17 tokens ran for more than 11 minutes. Characters and small BPE keep the 2^17."""
    from gpt_jax.inspect import default_blocks

    assert default_blocks(64, 65) == 2**17 // 64 == default_blocks(64, 256)
    assert default_blocks(64, 4096) == 2**17 * 256 // 4096 // 64
    assert default_blocks(64, 1_112_063) == 1


def test_a_run_that_overrode_its_model_is_not_described_as_the_config_file_s_model(tmp_path):
    """The config file's description speaks of its own model ("4 layers, 4 heads, 128 wide,
    block 64"); index.html showed it under the summary of a run that had overridden them.
    It is now marked as the config file's, with the model fields the run set."""
    run = tmp_path / "run"
    trained = run_python(["train.py", "--config=configs/bigram.py", f"--workdir={run}",
                          "--config.model.block_size=4", "--config.train.num_steps=2",
                          "--config.train.eval_iters=1", "--config.train.loss_plot=False"])
    assert trained.returncode == 0, trained.stderr
    result = _inspect(run, "--prompt=RO", "--blocks=1", f"--out={tmp_path / 'out'}")
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert ("<i>bigram table: the next character from the current one alone (the config "
            "file&#x27;s description; this run sets model.block_size=4)</i>") in page
    from gpt_jax.train_cli import described

    cpu = "a GPT sized for a CPU: 4 layers, 4 heads, 128 wide, block 64"
    assert described(cpu, {"model.n_layer": 2, "train.num_steps": 3}) == (
        f"{cpu} (the config file's description; this run sets model.n_layer=2)")
    assert described(cpu, {"train.num_steps": 3}) == cpu  # nothing it speaks of was changed
    dates = "encoder–decoder: dates in many spellings → ISO dates"
    assert described(dates, {"data.path": "numbers.tsv"}) == (  # the task is the user's
        f"{dates} (the config file's description; this run sets data.path=numbers.tsv)")
    assert described("mine", {"description": "mine", "model.n_layer": 2}) == "mine"
    assert described("", {"model.n_layer": 2}) == ""


def test_the_position_loss_caption_speaks_of_the_model_drawn():
    """An MLP over the last `context` characters: the caption said that the bigram's line
    is flat and that a model that attends gains from all of the block, neither of which
    is its own picture."""
    from types import SimpleNamespace

    from gpt_jax.inspect import Inspection

    page = SimpleNamespace(unit="character")
    assert [Inspection._position_caption(page, SimpleNamespace(name=name, context=context,
                                                                 n_layer=n_layer))
            for name, context, n_layer in (("mlp", 8, 0), ("bigram", 0, 0), ("gpt", 0, 2),
                                           ("gpt", 0, 0))] == [
        "This mlp sees the last 8 characters (model.context) and no more, so its loss falls "
        "over the first 8 positions and is flat after them.",
        "The bigram sees one character wherever it stands, so its line is flat.",
        "A model that attends gains from every character of context it is given, so its "
        "loss falls along the block; the bigram, which sees one character wherever it "
        "stands, would draw a flat line.",
        # a GPT without blocks was said to attend, beside its flat line
        "Without blocks (n_layer=0) this GPT sees one character and its position, not the "
        "ones before it: its line is all but flat, as the bigram's."]


def test_labels_and_classes_of_characters_past_latin_1():
    """U+200B was drawn as '\\x200b' (byte 0x20, then '0b'); é was coloured a consonant."""
    from gpt_jax.pictures import char_class, visible

    assert visible("a\u200b\x0c") == "a\\u200b\\x0c"
    assert [char_class(c) for c in "éöeÉb"] == ["vowel", "vowel", "vowel", "capital",
                                                 "consonant"]


def test_the_loss_by_position_is_not_drawn_on_data_the_run_did_not_train_on(tmp_path):
    """The text at data.path edited after training: the picture titled 'validation loss' was
    drawn on the new text without a word (train.py's resume says so through data.json)."""
    text = tmp_path / "text.txt"
    text.write_text("to be or not to be, that is the question\n" * 40)
    config = tiny_config()
    config.data.path = str(text)
    config.train.update(dict(num_steps=2, eval_interval=2, eval_iters=1))
    train_and_evaluate(config, tmp_path / "run")
    run = load_run(tmp_path / "run")
    tokens_N, why = validation_tokens(run.config, run.tokenizer, tmp_path / "run")
    assert tokens_N is not None, why
    text.write_text("to be or not to be, that is not the question\n" * 40)
    tokens_N, why = validation_tokens(run.config, run.tokenizer, tmp_path / "run")
    assert tokens_N is None
    assert why == (f"the data at {text} is not what this run trained on: it changed since (its "
                   f"sha256 differs from the one in {tmp_path / 'run' / 'data.json'})")


def test_an_inspection_stopped_half_way_leaves_no_earlier_page_over_its_pictures(
        runs, tmp_path, monkeypatch):
    """Ctrl-C after the first pictures: index.html still named the earlier run and prompt,
    above pictures of this one."""
    from gpt_jax import inspect as inspect_module

    out = tmp_path / "out"
    out.mkdir()
    (out / "index.html").write_text("<p>Run: another run, prompt JULIET</p>")
    def interrupted(self):
        raise KeyboardInterrupt
    monkeypatch.setattr(inspect_module.Inspection, "_embeddings", interrupted)
    run = load_run(runs["gpt"])
    inspection = inspect_module.Inspection(run, runs["gpt"], "ROMEO", out, 2, 5)
    with pytest.raises(KeyboardInterrupt):
        inspection.draw()
    assert (out / "attention.png").exists() and not (out / "index.html").exists()


def test_an_encoder_decoder_is_summed_up_with_both_stacks(tmp_path):
    """"2 layer(s)" of a model of 2 encoder and 2 decoder blocks."""
    from types import SimpleNamespace

    import numpy as np
    from tiny_config import tiny_config

    from gpt_jax.inspect import _summary

    config = tiny_config(name="encoder_decoder", block_size=11)
    run = SimpleNamespace(config=config, params={"w": np.zeros(5)}, step=3)
    assert _summary(run, tmp_path).startswith(
        "encoder_decoder, 2 encoder + 2 decoder blocks × 2 head(s), 16 wide, block 11, "
        "5 parameters, step 3")


@pytest.mark.parametrize("task, tokenizer, unit", [
    ("text", "char", "character"), ("text", "bpe", "token"), ("pairs", "char", "target token")])
def test_the_run_s_val_loss_is_given_in_its_unit(tmp_path, task, tokenizer, unit):
    """A BPE run's loss is per token, a pairs run's per target token: the same "val loss"
    read as per character beside a character run's."""
    from types import SimpleNamespace

    import numpy as np
    from tiny_config import tiny_config

    from gpt_jax.inspect import _summary

    config = tiny_config()
    config.data.task = task
    (tmp_path / "metrics.jsonl").write_text('{"step": 3, "val_loss": 1.25}\n')
    tokens = SimpleNamespace(chars="ab") if tokenizer == "char" else SimpleNamespace()
    run = SimpleNamespace(config=config, params={"w": np.zeros(5)}, step=3, tokenizer=tokens)
    assert _summary(run, tmp_path).endswith(f", step 3, val loss 1.250 (nats per {unit})")
