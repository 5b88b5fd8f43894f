"""Who computes the products (gpt_jax/xla_options.py): YNNPACK or XLA's own kernels, chosen per
program, changes the compiled program and not what it computes."""

import jax
import numpy as np
import pytest

from conftest import tiny_config
from gpt_jax import translation
from gpt_jax.models.encoder_decoder import EncoderDecoder, EncoderDecoderConfig
from gpt_jax.pairs import PairVocab
from gpt_jax.restore import load_run
from gpt_jax.trainer import Trainer
from gpt_jax.xla_options import compiler_options

pytestmark = pytest.mark.skipif(jax.default_backend() != "cpu", reason="an XLA:CPU option")


def _ynnpack_fusions(compiled) -> int:
    return compiled.as_text().count("ynn_fusion")


def test_without_library_products_no_product_goes_to_ynnpack():
    def f(a_MxK, b_KxN):
        return jax.numpy.tanh(a_MxK @ b_KxN) @ b_KxN.T

    args = (np.ones((64, 32), np.float32), np.ones((32, 32), np.float32))
    lowered = jax.jit(f).lower(*args)
    assert compiler_options(True) is None  # XLA's defaults
    library = lowered.compile(compiler_options=compiler_options(True))
    own = lowered.compile(compiler_options=compiler_options(False))
    assert _ynnpack_fusions(library) > 0 and _ynnpack_fusions(own) == 0
    np.testing.assert_allclose(own(*args), library(*args), rtol=1e-6)


@pytest.fixture(scope="module")
def muon_runs(tmp_path_factory):
    """The tiny GPT on Muon, 4 steps, its train step compiled each way."""
    runs = {}
    for library in (True, False):
        config = tiny_config()
        config.train.update(dict(optimizer="muon", num_steps=4, eval_interval=4,
                                 checkpoint_every=4, cpu_library_products=library))
        workdir = tmp_path_factory.mktemp(f"library_{library}")
        trainer = Trainer(config, workdir)
        try:
            fusions = _ynnpack_fusions(trainer.train_chunk)
            record = trainer.run()
        finally:
            trainer.close()
        runs[library] = (fusions, record, load_run(workdir).params)
    return runs


def test_cpu_library_products_chooses_who_computes_the_train_steps_products(muon_runs):
    assert muon_runs[True][0] > 0 and muon_runs[False][0] == 0


def test_the_train_step_trains_the_same_whoever_computes_its_products(muon_runs):
    (_, record_a, params_a), (_, record_b, params_b) = muon_runs[True], muon_runs[False]
    assert record_a["val_loss"] == pytest.approx(record_b["val_loss"], rel=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                 params_a, params_b)


def test_cached_decoding_uses_xla_products_from_32_sources_and_writes_the_same_tokens():
    """Below XLA_PRODUCTS_FROM sources the cached decoding keeps YNNPACK, as the uncached
    decoder always does; from there on XLA's own kernels, whose tokens are the same."""
    assert [translation._products_for(True, rows, None) for rows in (1, 31, 32, 1024)] == [
        True, True, False, False]
    assert translation._products_for(False, 1024, None)  # the uncached decoder: YNNPACK
    assert not translation._products_for(False, 1, False)  # or as asked
    config = EncoderDecoderConfig(vocab_size=20, source_len=7, block_size=6, n_embd=16,
                                  n_head=2, n_layer=2, fused_decode=True)
    rng = np.random.default_rng(0)
    source = rng.integers(3, 20, (32, 7))
    source[np.arange(7)[None] >= rng.integers(1, 8, (32, 1))] = PairVocab.PAD
    model = EncoderDecoder(config)
    params = model.init(jax.random.key(0), source, source[:, :6])["params"]
    params = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.key(1), p.shape),
                          params)
    written = {library: np.asarray(translation.translate(
        model, params, source, steps=6, library_products=library)) for library in (None, True)}
    np.testing.assert_array_equal(written[None], written[True])
    np.testing.assert_array_equal(written[None], translation.translate(
        model, params, source, steps=6, use_cache=False))
    program = translation._jitted(translation._translate, False).lower(
        model, params, source, None, 1.0, 0, 1.0, steps=6, greedy=True, use_cache=True)
    assert _ynnpack_fusions(program.compile()) == 0
