"""Training from a folder that `python -m gpt_jax.prepare` wrote: memory-mapped token files,
read on the host chunk by chunk when the stream does not fit the device budget."""

import json
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from conftest import REPO, overridden, run_python, tiny_config
from gpt_jax.dataset import default_corpus_path
from gpt_jax.layout import BatchLayout
from gpt_jax.restore import load_run
from gpt_jax.text_task import TextTask

TINY = (REPO / "tests" / "tiny_config.py").as_posix()


@pytest.fixture(scope="module")
def datadir(tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "shakespeare"
    result = run_python(["-m", "gpt_jax.prepare", f"--input={default_corpus_path()}",
                         f"--out={out}"])
    assert result.returncode == 0, result.stderr
    return out


def _task(path, budget_mb):
    config = tiny_config()
    config.data.path, config.data.on_device_budget_mb = str(path), budget_mb
    return TextTask.load(config)


def test_streamed_windows_are_the_windows_gathered_on_the_device(datadir):
    """The same (seed, step) batches whichever way the windows are gathered, and the same as
    from the text file itself."""
    on_device, streamed, text = _task(datadir, 1024), _task(datadir, 0), _task("", 1024)
    assert on_device.on_device and not streamed.on_device and on_device.prepared
    layout = BatchLayout(8, 1, 0, 1)
    for step in (0, 7):
        starts = np.asarray(on_device.chunk_inputs(layout, step, 3, 4))
        windows = np.asarray(streamed.chunk_inputs(layout, step, 3, 4))
        tokens = np.asarray(on_device.device_data())
        gathered = tokens[starts[..., None] + np.arange(on_device.block_size + 1)]
        np.testing.assert_array_equal(windows, gathered)
        np.testing.assert_array_equal(starts, np.asarray(text.chunk_inputs(layout, step, 3, 4)))
    np.testing.assert_array_equal(np.asarray(on_device.device_data()),
                                  text.corpus.train)


def test_each_process_reads_only_its_rows_and_together_they_are_the_global_batch(datadir):
    streamed = _task(datadir, 0)
    whole = np.asarray(streamed.chunk_inputs(BatchLayout(8, 1, 0, 1), 5, 2, 2))
    parts = [np.asarray(streamed.chunk_inputs(BatchLayout(8, 2, p, 1), 5, 2, 2))
             for p in range(2)]
    # (devices, steps, micro-batches, rows, T+1): process p holds global rows 4p .. 4p+3.
    np.testing.assert_array_equal(np.concatenate(parts, axis=3), whole)


def _train(workdir, *args, env=None):
    return run_python(["train.py", f"--config={TINY}", f"--workdir={workdir}",
                       *overridden(["--config.train.num_steps=20"], *args)], env=env)


def _losses(workdir):
    return [(r["step"], r["train_loss"], r["val_loss"]) for r in
            map(json.loads, (workdir / "metrics.jsonl").read_text().splitlines())]


def test_a_run_from_a_prepared_folder_equals_the_run_from_the_text(datadir, tmp_path):
    runs = {"text": [], "streamed": [f"--config.data.path={datadir}",
                                     "--config.data.on_device_budget_mb=0"]}
    for name, args in runs.items():
        # XLA's default compilation, as a user runs it: the suite's fast one (-O0, conftest.py)
        # rounds the two programs (batches gathered on the device, or sent from the host)
        # differently, by an ulp; the default compiles them to the same arithmetic.
        result = _train(tmp_path / name, *args, env={"XLA_FLAGS": ""})
        assert result.returncode == 0, result.stderr
    # The same tokens in the same batches, the same float32 steps: equal to the last bit.
    assert _losses(tmp_path / "text") == _losses(tmp_path / "streamed")
    text, streamed = load_run(tmp_path / "text"), load_run(tmp_path / "streamed")
    assert text.step == streamed.step == 20
    for a, b in zip(jax.tree.leaves(text.state), jax.tree.leaves(streamed.state), strict=True):
        np.testing.assert_array_equal(a, b)


def test_prepare_refuses_to_rewrite_a_folder_a_run_is_reading(datadir, tmp_path):
    trainer = subprocess.Popen(
        [sys.executable, "-u", "train.py", f"--config={TINY}", f"--workdir={tmp_path / 'run'}",
         f"--config.data.path={datadir}", "--config.train.num_steps=1000000"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in trainer.stdout:
            if "step(s) took" in line:
                break
        again = run_python(["-m", "gpt_jax.prepare", f"--input={default_corpus_path()}",
                            f"--out={datadir}", "--val_fraction=0.2"])
        assert again.returncode == 2
        assert again.stderr.strip().splitlines() == [
            f"error: {datadir} is in use by a training run (or another prepare); stop it, or "
            "prepare into another --out"]
    finally:
        trainer.kill()
        trainer.wait()
    time.sleep(0.1)


@pytest.mark.parametrize("name", ["train.bin", "meta.json"])
def test_a_file_of_a_prepared_folder_is_not_trained_on_as_text(datadir, tmp_path, name):
    result = _train(tmp_path / "run", f"--config.data.path={datadir / name}")
    assert result.returncode == 2 and result.stderr == (
        f"error: data file {datadir / name} is a file of the prepared dataset {datadir}: train "
        f"on the folder (--config.data.path={datadir})\n")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "meta.json").unlink(), "is incomplete: meta.json missing"),
    (lambda d: (d / "val.bin").write_bytes(b"\0" * 10), "holds 10 bytes but meta.json says"),
    # nanoGPT's prepared folder: its advice was a prepare --out that prepare then refused
    (lambda d: ((d / "meta.json").unlink(), (d / "meta.pkl").write_bytes(b"x")),
     "is not a folder that gpt_jax.prepare wrote (it has no meta.json and holds 'meta.pkl'): "
     "prepare the text into a new folder"),
    # what a prepare killed by the kernel leaves (a native abort, out of memory, in a BPE's
    # training): it was "data file path is a directory, not a file"
    (lambda d: ([(d / name).unlink() for name in ("train.bin", "val.bin", "meta.json",
                                                  "tokenizer.json")],
                (d / ".prepare-tmp").mkdir(), (d / ".prepare-tmp" / "tokens.bin").touch()),
     "holds a prepare that did not finish (it was stopped or killed, or ran out of memory): "
     "run python -m gpt_jax.prepare --input=... --out="),
])
def test_a_damaged_prepared_folder_is_refused_in_one_line(datadir, tmp_path, damage, message):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(datadir, broken)
    damage(broken)
    result = _train(tmp_path / "run", f"--config.data.path={broken}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


def _ids_past_the_vocabulary(path):
    tokens = np.memmap(path, np.uint8, mode="r+")
    tokens[::50] = 200  # a vocabulary of 65: no id reaches 200
    tokens.flush()


@pytest.mark.parametrize("budget_mb", [1024, 0], ids=["on_device", "streamed"])
@pytest.mark.parametrize("split", ["train", "val"])
def test_token_ids_past_the_vocabulary_are_refused_not_trained_on(datadir, tmp_path, budget_mb,
                                                                   split):
    """An id past the vocabulary would be clamped by the embedding lookup, and the loss of
    such a target is finite: a damaged file would train on garbage without a word."""
    import shutil

    from gpt_jax.errors import UserError

    broken = tmp_path / "broken"
    shutil.copytree(datadir, broken)
    _ids_past_the_vocabulary(broken / f"{split}.bin")
    task = _task(broken, budget_mb)
    message = f"{broken / split}.bin holds token id 200, past the vocabulary of 65"
    with pytest.raises(UserError, match=message):
        layout = BatchLayout(8, 1, 0, 1)
        task.device_data()
        task.chunk_inputs(layout, 0, 1, 1)
        task.eval_data(layout)
    result = _train(tmp_path / "run", f"--config.data.path={broken}",
                    f"--config.data.on_device_budget_mb={budget_mb}")
    assert result.returncode == 2 and result.stderr.startswith(f"error: {message}")


def test_inspect_notes_a_validation_file_damaged_after_training(datadir, tmp_path):
    """The pictures that need no data are drawn; the loss by position says why it is not."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(datadir, data)
    assert _train(tmp_path / "run", f"--config.data.path={data}",
                  "--config.train.num_steps=5").returncode == 0
    _ids_past_the_vocabulary(data / "val.bin")
    result = run_python(["-m", "gpt_jax.inspect", f"--workdir={tmp_path / 'run'}",
                         "--prompt=hello", f"--out={tmp_path / 'pictures'}"])
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "pictures" / "index.html").read_text()
    assert "validation data cannot be scored" in page and "holds token id 200" in page
    assert (tmp_path / "pictures" / "attention.png").is_file()


def test_a_resumed_run_refuses_data_of_another_vocabulary(tmp_path):
    bpe = tmp_path / "bpe"
    made = run_python(["-m", "gpt_jax.prepare", f"--input={default_corpus_path()}",
                       f"--out={bpe}", "--tokenizer=bpe", "--vocab_size=300"])
    assert made.returncode == 0, made.stderr
    assert _train(tmp_path / "run", "--config.train.num_steps=10").returncode == 0
    result = _train(tmp_path / "run", f"--config.data.path={bpe}")
    assert result.returncode == 2
    assert "tokenized with another vocabulary (bpe, 300 symbols)" in result.stderr


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_windows_read_from_a_token_file_are_the_memory_maps_windows(tmp_path, dtype):
    from gpt_jax.dataset import read_windows
    from gpt_jax.errors import UserError

    path = tmp_path / "tokens.bin"
    np.arange(1000, dtype=np.int64).astype(dtype).tofile(path)
    tokens = np.memmap(path, dtype=dtype, mode="r", shape=(1000,))
    starts = np.random.default_rng(0).integers(0, 1000 - 9, size=(3, 2, 4))
    windows = read_windows(tokens, starts, 9)
    assert windows.dtype == dtype and windows.shape == (3, 2, 4, 9)
    np.testing.assert_array_equal(windows, np.asarray(tokens)[starts[..., None] + np.arange(9)])
    path.write_bytes(path.read_bytes()[:100 * np.dtype(dtype).itemsize])  # prepared again
    with pytest.raises(UserError, match="became shorter while training"):
        read_windows(tokens, np.array([500]), 9)


def test_a_stream_past_two_to_the_31_tokens_is_read_where_its_offsets_say(datadir, tmp_path):
    """The train offsets were int32: past 2^31 tokens they wrapped negative (pread refused
    them, a traceback), and past 2^32 they would have read other windows without a word. A
    sparse train.bin of 2.3 billion tokens: the offsets are the drawn ones, and are read."""
    import shutil

    from gpt_jax.dataset import TRAIN_STREAM, batch_offsets, read_windows

    big = tmp_path / "big"
    shutil.copytree(datadir, big)
    n = 2_300_000_000
    with open(big / "train.bin", "r+b") as f:
        f.truncate(n)  # sparse: zeros, a token of the vocabulary
        f.seek(n - 5)
        f.write(bytes([1, 2, 3, 4, 5]))
    meta = json.loads((big / "meta.json").read_text())
    meta["train_tokens"] = n
    (big / "meta.json").write_text(json.dumps(meta))
    streamed = _task(big, 0)
    starts = BatchLayout(8, 1, 0, 1).chunk_starts(n, streamed.block_size, 1337, 0, 1, 1)
    assert starts.min() >= 0 and starts.max() >= 2**31
    expected = batch_offsets(n, streamed.block_size, 8, 1337, TRAIN_STREAM, 0)
    np.testing.assert_array_equal(np.sort(starts.ravel()), np.sort(expected))
    windows = np.asarray(streamed.chunk_inputs(BatchLayout(8, 1, 0, 1), 0, 1, 1))
    assert windows.shape[-1] == streamed.block_size + 1
    tail = read_windows(streamed.corpus.train, np.array([n - 6], np.int64), 6)
    assert tail.tolist() == [[0, 1, 2, 3, 4, 5]]


def test_a_dataset_on_a_read_only_disk_is_read_without_writing_its_lock(datadir, monkeypatch):
    """A reader's shared lock opened .lock for writing: a dataset on a read-only mount (or
    another user's) could not be trained on. prepare, which rewrites it, still needs it."""
    import errno
    import os

    from gpt_jax import token_files
    from gpt_jax.errors import UserError

    opened = os.open

    def read_only(path, flags, *mode):
        if flags & (os.O_RDWR | os.O_WRONLY | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return opened(path, flags, *mode)

    (datadir / token_files.LOCK_FILE).touch()
    monkeypatch.setattr(token_files.os, "open", read_only)
    with token_files.DataDirLock(datadir, exclusive=False):
        pass
    with pytest.raises(UserError, match="cannot open the lock file .*Read-only file system"):
        token_files.DataDirLock(datadir, exclusive=True)
    (datadir / token_files.LOCK_FILE).unlink()  # and none there, nor any way to make one
    with token_files.DataDirLock(datadir, exclusive=False):
        pass


def test_prepare_of_an_up_to_date_dataset_on_a_read_only_disk_is_the_usual_no_op(
        datadir, monkeypatch, tmp_path):
    """Preparing the same inputs again changes nothing, so it needs no write: on a read-only
    mount it said it could not open the lock file. A dataset to rewrite still needs one."""
    import errno
    import os

    from gpt_jax import prepare, token_files
    from gpt_jax.errors import UserError

    opened = os.open

    def read_only(path, flags, *mode):
        if flags & (os.O_RDWR | os.O_WRONLY | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return opened(path, flags, *mode)

    monkeypatch.setattr(token_files.os, "open", read_only)
    monkeypatch.setattr(prepare.os, "access", lambda path, mode: False)
    said = []
    assert prepare.prepare([str(default_corpus_path())], datadir, log=said.append) is False
    assert said == [f"{datadir} is up to date with these inputs and settings; nothing to do"]
    other = tmp_path / "other.txt"
    other.write_text("other text " * 100)
    with pytest.raises(UserError, match="cannot open the lock file .*Read-only file system"):
        prepare.prepare([str(other)], datadir, log=said.append)


def test_a_run_resumed_on_other_data_is_told_so(datadir, tmp_path):
    """A dataset prepared again from other text (the same characters) resumed silently: the
    val curve went on over another split. The same data, or a first start, says nothing.
    data.json records the step of the change, and `sample --best` warns exactly where its
    best is from before it (here whichever it is; a best forced before it: test_checkpoint)."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(datadir, data)
    run = tmp_path / "run"
    first = _train(run, f"--config.data.path={data}")
    assert first.returncode == 0, first.stderr
    same = _train(run, f"--config.data.path={data}", "--config.train.num_steps=25")
    assert same.returncode == 0 and "other data" not in same.stderr, same.stderr
    text = tmp_path / "reversed.txt"
    text.write_text(default_corpus_path().read_text()[::-1])
    shutil.rmtree(data)
    prepared = run_python(["-m", "gpt_jax.prepare", f"--input={text}", f"--out={data}"])
    assert prepared.returncode == 0, prepared.stderr
    other = _train(run, f"--config.data.path={data}", "--config.train.num_steps=30")
    assert other.returncode == 0, other.stderr
    assert "warning: resuming on other data than this run trained on until now" in other.stderr
    again = _train(run, f"--config.data.path={data}", "--config.train.num_steps=35")
    assert "other data" not in again.stderr  # said once: the run now trains on it
    # data.json: the step since which the run has trained on this data (kept on a resume on
    # the same data); the best checkpoint, where it was scored before, is said to be
    assert json.loads((run / "data.json").read_text())["since_step"] == 25
    from gpt_jax.restore import load_run

    best = load_run(run, best=True).step
    sampled = run_python(["-m", "gpt_jax.sample", f"--workdir={run}", "--best",
                          "--max_new_tokens=1"])
    assert sampled.returncode == 0 and f"from step {best} " in sampled.stderr, sampled.stderr
    assert (best <= 25) == ("was scored on the data this run trained on until step 25"
                            in sampled.stderr), (best, sampled.stderr)


def test_inspect_of_a_bpe_run_speaks_of_tokens_not_characters(tmp_path):
    """A BPE run's symbols are tokens: inspect's page said "character" throughout. (Its
    pictures' labels of tokens that are parts of characters: test_tokenizer.)"""
    text = tmp_path / "text.txt"
    text.write_text(default_corpus_path().read_text(encoding="utf-8")[:20_000] + " déjà vu 🙂" * 50,
                    encoding="utf-8")
    bpe = tmp_path / "bpe"
    made = run_python(["-m", "gpt_jax.prepare", f"--input={text}", f"--out={bpe}",
                       "--tokenizer=bpe", "--vocab_size=300"])
    assert made.returncode == 0, made.stderr
    assert _train(tmp_path / "run", f"--config.data.path={bpe}",
                  "--config.train.num_steps=5").returncode == 0
    result = run_python(["-m", "gpt_jax.inspect", f"--workdir={tmp_path / 'run'}",
                         "--prompt=déjà vu", "--top=300", f"--out={tmp_path / 'pictures'}"])
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "pictures" / "index.html").read_text()
    assert "The next token" in page and "Token embeddings" in page
    assert "one token of the prompt" in page and "character" not in page.lower()


def test_a_stream_of_2_31_tokens_is_read_on_the_host_whatever_the_budget(tmp_path):
    """Its windows' start offsets go to the device as int32: with a budget of 16 GiB (an
    H100's share) a 3 GiB stream was kept there, and a third of the offsets wrapped negative,
    reading other windows without a word. (A sparse file: nothing of it is read here.)"""
    from gpt_jax.dataset import Corpus
    from gpt_jax.tokenizer import CharTokenizer

    path = tmp_path / "train.bin"
    with open(path, "wb") as f:
        f.truncate(2**31)
    train = np.memmap(path, np.uint8, "r", shape=(2**31,))
    config = tiny_config()
    config.data.on_device_budget_mb = 16384
    corpus = Corpus(CharTokenizer(["a"]), train, train[:100])
    assert not TextTask(config, corpus).on_device
    shorter = Corpus(CharTokenizer(["a"]), train[:2**31 - 1], train[:100])
    assert TextTask(config, shorter).on_device
