"""The encoder–decoder: who sees what (by gradients, exactly), cached decoding equals the
uncached decoder, a tiny run learns a toy task to 100%, and a killed run resumes bit-exact."""

import dataclasses
import json
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO, assert_causal, devices_env, overridden, run_python
from gpt_jax.models.encoder_decoder import EncoderDecoder, EncoderDecoderConfig
from gpt_jax.pairs import PairVocab
from gpt_jax.translation import _pick, translate

V, S, T = 20, 7, 6
CONFIG = EncoderDecoderConfig(vocab_size=V, source_len=S, block_size=T, n_embd=16, n_head=2,
                              n_layer=2)
# Sources of different lengths, PAD = 0 after each; targets start with BOS.
SOURCE = np.array([[3, 4, 5, 0, 0, 0, 0], [5, 6, 7, 8, 9, 10, 11], [12, 13, 0, 0, 0, 0, 0]])
TARGET_IN = np.array([[1, 3, 4, 5, 6, 7], [1, 5, 6, 7, 8, 9], [1, 12, 13, 3, 4, 5]])


@pytest.fixture(scope="module")
def model():
    m = EncoderDecoder(CONFIG)
    variables = m.init(jax.random.key(0), SOURCE, TARGET_IN)
    # Far from init, so that no gradient is zero by accident of small weights.
    params = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.key(1), p.shape),
                          variables["params"])
    return m, params, variables["perturbations"]


def _grads(model):
    """d out_t / d embeddings for every target position t at once: (T, B, T or S, C)."""
    m, params, perturbations = model
    zeros = jax.tree.map(jnp.zeros_like, perturbations)

    def outputs_by_position(pert):
        return m.apply({"params": params, "perturbations": pert}, SOURCE, TARGET_IN).sum((0, 2))

    return jax.tree.map(np.asarray, jax.jacrev(outputs_by_position)(zeros))


def _assert_decoder_sees_its_past_and_the_whole_source(model):
    g = _grads(model)
    assert_causal(g["target_embeddings"])
    source_TxBxS, real = np.abs(g["source_embeddings"]).sum(-1), SOURCE != 0
    for t, source in enumerate(source_TxBxS):
        assert np.all(source[real] > 0), f"position {t}: cross-attention must reach every " \
                                         "real source token"
        assert np.all(source[~real] == 0.0), "source padding must get exactly zero gradient"


@pytest.mark.parametrize("i", range(S))
def test_the_encoder_sees_the_whole_source_and_no_padding(model, i):
    """Every real position i of the encoder's output reads every real source token, earlier
    and later (no triangle), and no padding."""
    m, params, _ = model

    def encoded(pert):
        return m.apply({"params": params, "perturbations": pert}, SOURCE,
                       method=m.encode)[:, i].sum()

    zeros = jax.tree.map(jnp.zeros_like, model[2])
    g = np.abs(np.asarray(jax.grad(encoded)(zeros)["source_embeddings"])).sum(-1)  # (B, S)
    real = SOURCE != 0
    rows = real[:, i]  # the rows where position i is a real token
    assert np.all(g[rows][real[rows]] > 0), f"position {i} must see every source token"
    assert np.all(g[rows][~real[rows]] == 0.0), "padding must get exactly zero gradient"


def test_the_decoder_sees_its_past_and_the_whole_source(model):
    """At every target position t: exactly zero gradient toward later target tokens, non-zero
    toward t and earlier and toward every real source token, exactly zero toward padding."""
    _assert_decoder_sees_its_past_and_the_whole_source(model)


@pytest.mark.parametrize("greedy", [True, False])
def test_cached_decoding_equals_the_uncached_decoder_token_for_token(model, greedy):
    """Sources of different lengths in one batch; the cache holds the target so far and the
    source's keys and values, projected once."""
    m, params, _ = model
    kwargs = dict(steps=T, greedy=greedy, temperature=0.7)
    keys_B = jax.random.split(jax.random.key(3), len(SOURCE))
    cached = translate(m, params, SOURCE, keys_B, use_cache=True, **kwargs)
    uncached = translate(m, params, SOURCE, keys_B, use_cache=False, **kwargs)
    np.testing.assert_array_equal(cached, uncached)


def test_neither_pad_nor_bos_is_ever_picked_for_a_target():
    """Picked before the end token, either was skipped when the target was printed: a
    sampled [10, 27, 1, 10, ...] printed as another target than the one written."""
    logits_BxV = jnp.tile(jnp.array([9.0, 8.0, 1.0, 2.0, 0.0]), (256, 1))  # PAD, BOS likeliest
    keys_B = jax.random.split(jax.random.key(0), 256)
    greedy = _pick(logits_BxV, keys_B, 0, 1.0, 0, 1.0, greedy=True)
    assert set(np.asarray(greedy).tolist()) == {3}
    drawn = _pick(logits_BxV, keys_B, 0, 1.0, 0, 1.0, greedy=False)
    assert set(np.asarray(drawn).tolist()) == {PairVocab.EOS, 3, 4}


@pytest.mark.parametrize("fused_decode, qk_norm", [(False, False), (True, False), (True, True)],
                         ids=["head_by_head", "fused_heads", "fused_heads_qk_norm"])
def test_cached_logits_equal_the_uncached_decoder_logit_for_logit(model, fused_decode, qk_norm):
    """Both decoding paths (model.fused_decode) against the uncached decoder, step by step;
    the fused heads also with normalized queries and keys (the source's keys projected with
    its values, then normalized). Equal to float32 rounding: one position's products sum in
    another order than the whole prefix's (measured ~1e-6 on logits of ~1; a cache read at the
    wrong position moves them by 0.1 or more)."""
    m, params, _ = model
    m = m.clone(config=dataclasses.replace(CONFIG, fused_decode=fused_decode, qk_norm=qk_norm))
    if qk_norm:  # gains too: each head's RMSNorm scale, away from 1
        params = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.key(2), p.shape),
                              m.init(jax.random.key(0), SOURCE, TARGET_IN)["params"])
    memory = m.apply({"params": params}, SOURCE, method=m.encode)
    mask = SOURCE != PairVocab.PAD
    full = m.apply({"params": params}, TARGET_IN, memory, mask, method=m.decode)
    cache = None
    for t in range(T):
        variables = {"params": params, **({"cache": cache} if cache is not None else {})}
        logits, mutated = m.apply(variables, TARGET_IN[:, t:t + 1], memory, mask, decode=True,
                                  start=t, method=m.decode, mutable=["cache"])
        cache = mutated["cache"]
        # The same float32 arithmetic over the same keys, in another grouping.
        np.testing.assert_allclose(logits[:, 0], full[:, t], rtol=1e-5, atol=1e-5)
    # The switch took effect: the fused heads keep the target's keys as (B, H, D, T) and the
    # source's as (B, H, D, S); the Heads keep theirs head-major, (H, B, T, D) and (H, B, S, D).
    B, H, D = SOURCE.shape[0], CONFIG.n_head, CONFIG.head_size
    heads = cache["decoder_0"]["sa"]["heads"]
    target_keys = heads["cached_key"] if fused_decode else heads["cache"]["cached_key"]
    source_keys = cache["decoder_0"]["cross"]["heads"]["source_key"]
    assert target_keys.shape == ((B, H, D, T) if fused_decode else (H, B, T, D))
    assert source_keys.shape == ((B, H, D, S) if fused_decode else (H, B, S, D))


def _products_of_the_source(jaxpr, shape) -> int:
    """Matrix products in `jaxpr` (and the jaxprs inside it) with an operand of `shape`."""
    count = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            count += any(getattr(v.aval, "shape", None) == shape for v in eqn.invars)
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            count += _products_of_the_source(sub, shape)
    return count


@pytest.mark.parametrize("fused_decode", [False, True], ids=["head_by_head", "fused_heads"])
def test_the_source_is_projected_at_the_first_token_only(model, fused_decode):
    """The source's keys and values are computed once per source: the first decoding step
    multiplies the encoder's output (B, S, C) by the key and value kernels, a later step reads
    them from the cache and never touches the encoder's output in a product."""
    m, params, _ = model
    m = m.clone(config=dataclasses.replace(CONFIG, fused_decode=fused_decode))
    memory = m.apply({"params": params}, SOURCE, method=m.encode)
    mask = SOURCE != PairVocab.PAD

    def step(cache, t):
        variables = {"params": params, **({"cache": cache} if cache is not None else {})}
        return m.apply(variables, TARGET_IN[:, t:t + 1], memory, mask, decode=True, start=t,
                       method=m.decode, mutable=["cache"])

    first = jax.make_jaxpr(lambda: step(None, 0))()
    _, mutated = step(None, 0)
    later = jax.make_jaxpr(lambda c: step(c, 1))(mutated["cache"])
    assert _products_of_the_source(first.jaxpr, memory.shape) > 0
    assert _products_of_the_source(later.jaxpr, memory.shape) == 0


VARIANTS = {  # the model switches the encoder–decoder reads, other than those above
    "separate_tables": dict(shared_embeddings=False),
    "swiglu_without_biases": dict(activation="swiglu", bias=False, shared_embeddings=False),
    "relu_squared_zero_init_qk_norm": dict(activation="relu2", zero_init_proj=True,
                                           qk_norm=True, fused_decode=True),
}


@pytest.mark.parametrize("switches", VARIANTS.values(), ids=VARIANTS.keys())
def test_every_variant_keeps_who_sees_what_and_decodes_the_same_with_the_cache(switches):
    m = EncoderDecoder(dataclasses.replace(CONFIG, **switches))
    variables = m.init(jax.random.key(0), SOURCE, TARGET_IN)
    params = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.key(1), p.shape),
                          variables["params"])
    if "shared_embeddings" in switches:
        assert {"source_embedding", "target_embedding", "lm_head"} <= set(params), set(params)
    paths = [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_leaves_with_path(params)]
    biases = [path for path in paths if "bias" in path]
    assert (biases == []) if switches.get("bias") is False else biases  # norms' and head's too
    _assert_decoder_sees_its_past_and_the_whole_source((m, params, variables["perturbations"]))
    cached = translate(m, params, SOURCE, steps=T, use_cache=True)
    np.testing.assert_array_equal(cached, translate(m, params, SOURCE, steps=T, use_cache=False))


def _toy_files(tmp_path):
    rng = np.random.default_rng(0)
    letters = "abcdefgh"
    lines = {"train": [], "val": []}
    seen = set()
    while len(lines["train"]) < 600 or len(lines["val"]) < 40:
        word = "".join(rng.choice(list(letters), size=rng.integers(2, 6)))
        if word in seen:
            continue
        seen.add(word)
        split = "val" if len(lines["val"]) < 40 and rng.random() < 0.1 else "train"
        if len(lines[split]) < (600 if split == "train" else 40):
            lines[split].append(f"{word}\t{word[::-1]}")
    for split, rows in lines.items():
        (tmp_path / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    return tmp_path / "train.tsv", tmp_path / "val.tsv"


def _run(model):
    """The fixture's model as a run of the sampler: its config's lengths, a vocabulary of V."""
    import ml_collections

    m, params, _ = model
    config = ml_collections.ConfigDict({"data": {"max_source_len": S, "max_target_len": T - 1},
                                        "model": {"name": "encoder_decoder", "block_size": T}})
    vocab = PairVocab(tuple("abcdefghijklmnopq"))  # V = 3 specials + 17 characters
    return SimpleNamespace(model=m, params=params, config=config, tokenizer=vocab)


def test_a_written_target_is_never_longer_than_the_longest_target(model):
    """The last of the T slots is the end token's place: a row that writes no end token there
    (sampled hot from an untrained model) is cut at max_target_len characters, never printed
    one longer than any target could be."""
    from gpt_jax.pairs_task import translate_texts

    run = _run(model)
    texts = translate_texts(run.model, run.params, run.config, run.tokenizer, ["abc"] * 16,
                            greedy=False, temperature=3.0)
    assert max(map(len, texts)) == T - 1, texts


def test_a_source_samples_the_same_alone_and_among_others(model, monkeypatch):
    """Same seed, same text: a source's samples drew from its row of the batch, so line 2 of
    a --prompts file sampled otherwise than the same source alone, and each batch of a long
    file from a key of its own. Now as a text prompt's: sample j from the seed's key j."""
    from gpt_jax import sample

    run = _run(model)
    flags = SimpleNamespace(temperature=3.0, top_k=None, top_p=None, num_samples=3, seed=1,
                            no_cache=False)
    sources = ["abc", "ba", "cab", "ab"]
    together = list(sample._translate(run, sources, flags))
    assert len(set(together[3:6])) == 3  # drawn: not one target three times
    for n, source in enumerate(sources):
        assert list(sample._translate(run, [source], flags)) == together[3 * n:3 * n + 3]
    monkeypatch.setattr(sample, "TRANSLATE_ROWS", 6)  # two sources a batch, two batches
    assert list(sample._translate(run, sources, flags)) == together


def _toy_args(tmp_path, workdir, *extra):
    train, val = _toy_files(tmp_path)
    return ["train.py", "--config=configs/seq2seq.py", f"--workdir={workdir}", *overridden([
            f"--config.data.path={train}", f"--config.data.val_path={val}",
            "--config.data.max_source_len=6", "--config.data.max_target_len=6",
            "--config.model.block_size=7", "--config.model.n_embd=32", "--config.model.n_head=2",
            "--config.model.n_layer=1", "--config.train.batch_size=32",
            "--config.train.num_steps=300", "--config.train.learning_rate=5e-3",
            "--config.train.warmup_steps=20", "--config.train.eval_interval=150",
            "--config.train.eval_iters=2", "--config.train.checkpoint_every=50",
            "--config.train.loss_plot=False"], *extra)]


def test_a_tiny_run_learns_to_reverse_words_exactly_and_the_sampler_writes_them(tmp_path):
    """Reversing needs cross-attention by position: 100% of held-out words, in seconds; and
    the sampler then writes the reversal of prompts from a flag, a file and standard input,
    and names the line of a file's source that is too long."""
    run = tmp_path / "run"
    result = run_python(_toy_args(tmp_path, run), timeout=120)
    assert result.returncode == 0, result.stderr
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 300 and last["val_exact_match"] == 1.0, last
    (tmp_path / "prompts.txt").write_bytes(b"abc\r\nhgfe\n\n\n")  # CRLF, blank lines after
    from_file = run_python(["-m", "gpt_jax.sample", f"--workdir={run}",
                            f"--prompts={tmp_path / 'prompts.txt'}"])
    assert from_file.returncode == 0, from_file.stderr
    assert from_file.stdout.splitlines() == ["cba", "efgh"]
    # more sources than one batch holds (TRANSLATE_ROWS): in order, each once, the last
    # batch padded to the others' length and cut back
    (tmp_path / "many.txt").write_text("abc\nhgfe\n" * 1300 + "dcba\n")
    many = run_python(["-m", "gpt_jax.sample", f"--workdir={run}",
                       f"--prompts={tmp_path / 'many.txt'}"])
    assert many.stdout.splitlines() == ["cba", "efgh"] * 1300 + ["abcd"], many.stderr
    one = run_python(["-m", "gpt_jax.sample", f"--workdir={run}", "--prompt=dcba"])
    assert one.stdout.strip() == "abcd"
    from_stdin = subprocess.run([sys.executable, "-m", "gpt_jax.sample", f"--workdir={run}",
                                 "--prompts=-"], cwd=REPO, input="ab\nfed\n",
                                capture_output=True, text=True, timeout=120)
    assert from_stdin.stdout.splitlines() == ["ba", "def"], from_stdin.stderr
    uncached = run_python(["-m", "gpt_jax.sample", f"--workdir={run}", "--prompt=dcba",
                           "--no_cache"])  # the decoder re-run on the whole prefix
    assert uncached.stdout.strip() == "abcd", uncached.stderr
    for flag, said in (("--max_new_tokens=3", "--max_new_tokens is for continuing text"),
                       ("--slide=1", "--slide is for continuing text"),
                       ("--num_samples=3", "--num_samples=3 with greedy decoding writes the "
                                           "same target 3 times"),
                       ("--seed=7", "--seed: greedy decoding draws nothing at random")):
        refused = run_python(["-m", "gpt_jax.sample", f"--workdir={run}", "--prompt=ab", flag])
        assert refused.returncode == 2 and refused.stderr.startswith(f"error: {said}"), (
            refused.stderr)
    blocks = run_python(["-m", "gpt_jax.inspect", f"--workdir={run}", "--prompt=ab",
                         "--blocks=5", f"--out={tmp_path / 'pictures'}"])
    assert blocks.returncode == 2 and blocks.stderr.startswith(
        "error: --blocks sets the windows of the loss by position, which is drawn for text "
        "runs only"), blocks.stderr
    no_source = run_python(["-m", "gpt_jax.sample", f"--workdir={run}"])
    assert no_source.returncode == 2 and no_source.stderr.startswith(
        "error: the source is empty: a run trained on pairs writes the target of a source of 1 "
        "to data.max_source_len = 6 characters"), no_source.stderr
    (tmp_path / "prompts.txt").write_text("abc\nabcdefgh\n")  # a source too long: named
    too_long = run_python(["-m", "gpt_jax.sample", f"--workdir={run}",
                           f"--prompts={tmp_path / 'prompts.txt'}"])
    assert too_long.returncode == 2 and too_long.stderr.strip().endswith(
        "prompts.txt, line 2: a source must have 1 to data.max_source_len = 6 characters, "
        "got 8: 'abcdefgh'"), too_long.stderr
    (tmp_path / "prompts.txt").write_bytes(b"a\x0cb\n\xff\n")  # lines end at \n alone
    not_utf8 = run_python(["-m", "gpt_jax.sample", f"--workdir={run}",
                           f"--prompts={tmp_path / 'prompts.txt'}"])
    assert not_utf8.returncode == 2 and not_utf8.stderr.strip().endswith(
        "prompts.txt, line 2: not UTF-8 text (byte 0xff at byte column 1)"), not_utf8.stderr


# Dropout on, a checkpoint every 10 steps.
SHORT = ["--config.train.num_steps=20", "--config.model.dropout=0.1",
         "--config.train.checkpoint_every=10"]


@pytest.fixture(scope="module")
def one_device_workdir(tmp_path_factory) -> Path:
    """20 steps on one device without interruption: the reference of the tests below."""
    tmp_path = tmp_path_factory.mktemp("one_device")
    result = run_python(_toy_args(tmp_path, tmp_path / "run", *SHORT), env=devices_env(1))
    assert result.returncode == 0, result.stderr
    return tmp_path / "run"


@pytest.fixture(scope="module")
def one_device(one_device_workdir):
    from gpt_jax.restore import load_run

    return load_run(one_device_workdir)


def test_a_killed_run_resumes_bit_exact(tmp_path, one_device):
    from gpt_jax.kill_points import ENV
    from gpt_jax.restore import load_run

    # Killed as the save of step 20 starts: orbax finishes one save before it starts the next,
    # so step 10's is on disk and the run must resume from it, not start again.
    killed = run_python(_toy_args(tmp_path, tmp_path / "killed", *SHORT), env={ENV: "save:20"})
    assert killed.returncode == -signal.SIGKILL
    resumed = run_python(_toy_args(tmp_path, tmp_path / "killed", *SHORT))
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from the checkpoint at step 10\n" in resumed.stdout, resumed.stdout
    run = load_run(tmp_path / "killed")
    assert one_device.step == run.step == 20
    for x, y in zip(jax.tree.leaves(one_device.state), jax.tree.leaves(run.state), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("devices, accum", [(2, 1), (1, 2), (2, 2)])
def test_any_device_layout_and_accumulation_match_one_device_with_dropout_on(
        tmp_path, one_device, devices, accum):
    """Data parallelism and accumulated micro-batches over pairs: the same global batches
    and masks, the same parameters; float32 sums in another order (see test_multidevice.py).
    That the loss is the mean over the global batch's target tokens: test_gpt_on_pairs.py."""
    from conftest import assert_trees_close
    from gpt_jax.restore import load_run

    result = run_python(_toy_args(tmp_path, tmp_path / "run", *SHORT,
                                  f"--config.train.grad_accum_steps={accum}"),
                        env=devices_env(devices))
    assert result.returncode == 0, result.stderr
    assert_trees_close(one_device.state, load_run(tmp_path / "run").state, rtol=1e-5,
                       atol=1e-7)


def test_sampled_translations_follow_the_seed_and_top_k_1_writes_the_greedy_ones(
        tmp_path, one_device_workdir):
    """`sample --temperature --top_k` from a run on pairs (20 steps: far from sure of its
    targets): one target per source, in their order, of the task's characters and at most
    data.max_target_len long; the same seed writes the same targets and another seed others;
    and with --top_k=1, whatever the temperature and seed, the greedy targets, as with a
    temperature near zero or a tiny --top_p."""
    sources = ["abc", "hgfe", "dcba", "ab"]
    (tmp_path / "sources.txt").write_text("\n".join(sources) + "\n")

    def sample(*flags) -> list[str]:
        result = run_python(["-m", "gpt_jax.sample", f"--workdir={one_device_workdir}",
                             f"--prompts={tmp_path / 'sources.txt'}", *flags])
        assert result.returncode == 0, result.stderr
        return result.stdout.split("\n")[:-1]  # one line each, an empty target's included

    hot = ["--temperature=1.5", "--top_k=5"]
    sampled = sample(*hot, "--seed=1")
    assert len(sampled) == len(sources)
    assert all(set(target) <= set("abcdefgh") and len(target) <= 6 for target in sampled)
    assert sample(*hot, "--seed=1") == sampled
    assert sample(*hot, "--seed=2") != sampled
    greedy = sample()
    assert len(greedy) == len(sources) and greedy != sampled
    assert sample("--temperature=1.5", "--top_k=1", "--seed=2") == greedy
    # Each option applied, not only accepted: near zero, the temperature leaves the likeliest
    # token alone; so does a tiny top_p.
    assert sample("--temperature=1e-6", "--seed=1") == greedy
    assert sample("--top_p=0.001", "--seed=1") == greedy


@pytest.mark.parametrize("content, message", [
    ("abc\n", ":1: no tab"), ("ab\tba\nabc\t\n", ":2: empty target"),
    ("ab\tba\n\tba\n", ":2: empty source"),
    ("abcdefghij\tx\n", ":1: the source has 10 characters, more than data.max_source_len = 6"),
    ("ab\tba\tx\n", ":1: 2 tabs"),
])
def test_bad_pair_files_are_one_line_with_the_line_number(tmp_path, content, message):
    (tmp_path / "bad.tsv").write_text(content)
    args = _toy_args(tmp_path, tmp_path / "run")
    args = [a for a in args if not a.startswith("--config.data.path=")]
    result = run_python([*args, f"--config.data.path={tmp_path / 'bad.tsv'}"])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


def test_a_non_utf8_pair_file_names_its_line(tmp_path):
    (tmp_path / "bad.tsv").write_bytes(b"ab\tba\ncd\t\xffd\n")
    args = [a for a in _toy_args(tmp_path, tmp_path / "run")
            if not a.startswith("--config.data.path=")]
    result = run_python([*args, f"--config.data.path={tmp_path / 'bad.tsv'}"])
    assert result.returncode == 2 and "bad.tsv:2: not UTF-8" in result.stderr, result.stderr


def test_the_held_out_pairs_are_the_val_file_or_every_tenth_pair(tmp_path):
    from gpt_jax.config import load_config_file
    from gpt_jax.pairs_task import PairsTask

    train, val = _toy_files(tmp_path)
    config = load_config_file(str(REPO / "configs/seq2seq.py"))
    config.data.path, config.data.max_source_len, config.data.max_target_len = str(train), 6, 6
    config.model.block_size = 7
    lines = train.read_text().splitlines()
    every_tenth = PairsTask.load(config)
    assert [f"{s}\t{t}" for s, t in every_tenth.val_pairs] == lines[9::10]
    assert len(every_tenth.train_pairs) == len(lines) - len(lines[9::10])
    config.data.val_path = str(val)
    given = PairsTask.load(config)
    assert [f"{s}\t{t}" for s, t in given.val_pairs] == val.read_text().splitlines()
    assert len(given.train_pairs) == len(lines)
