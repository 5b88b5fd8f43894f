"""python -m gpt_jax.prepare and the token files it writes: exact streams, the split, the
dtype, determinism, no-op re-runs, the lock, refusal of half-written folders, and errors."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, exec_with, run_python
from gpt_jax import prepare as prepare_module
from gpt_jax.errors import UserError
from gpt_jax.prepare import char_ids, expand_inputs, prepare, read_text
from gpt_jax.token_files import (
    DataDirLock,
    is_prepared_dir,
    open_prepared,
    token_dtype,
)
from gpt_jax.tokenizer import CharTokenizer, load_tokenizer

FILES = ("meta.json", "train.bin", "val.bin", "tokenizer.json")
# Two inputs, multi-byte characters of every length, and a byte-order mark that is not text.
FIRST = "First Citizen:\nBefore we proceed any further, hear me speak.\n" * 3
SECOND = "Ünïcödé: 漢字 € 😀, ça va?\n" * 4


def quiet(_: str) -> None:
    pass


@pytest.fixture
def corpus(tmp_path):
    """Two input files (the second with a byte-order mark) and the text they hold."""
    (tmp_path / "a.txt").write_text(FIRST, encoding="utf-8")
    (tmp_path / "b.txt").write_bytes(b"\xef\xbb\xbf" + SECOND.encode())
    return [str(tmp_path / "a.txt"), str(tmp_path / "b.txt")], FIRST + SECOND


@pytest.fixture
def shakespeare_file(tmp_path, shakespeare):
    path = tmp_path / "shakespeare.txt"
    path.write_text(shakespeare[:150_000], encoding="utf-8")
    return str(path), shakespeare[:150_000]


@pytest.mark.parametrize("chunk_bytes", [1, 5, 4096])
def test_char_streams_decode_to_the_inputs_split_where_the_lecture_splits(
        corpus, tmp_path, monkeypatch, chunk_bytes):
    monkeypatch.setattr(prepare_module, "CHUNK_BYTES", chunk_bytes)  # characters cut by reads
    paths, text = corpus
    assert prepare(paths, tmp_path / "data", log=quiet)
    data = open_prepared(tmp_path / "data")
    assert data.train.dtype == np.uint8 and data.tokenizer.kind == "char"
    assert data.tokenizer.chars == sorted(set(text))
    assert len(data.train) == int(0.9 * len(text))
    assert data.tokenizer.decode(data.train) + data.tokenizer.decode(data.val) == text
    assert [s["path"] for s in data.meta["sources"]] == paths
    assert data.meta["sources"][1]["bytes"] == len(SECOND.encode()) + 3
    with pytest.raises(ValueError):
        data.train[0] = 1  # read-only


def test_bpe_stream_is_the_whole_text_encoded_at_once(shakespeare_file, tmp_path, monkeypatch):
    monkeypatch.setattr(prepare_module, "CHUNK_BYTES", 4096)
    path, text = shakespeare_file
    prepare([path], tmp_path / "data", tokenizer="bpe", vocab_size=500, val_fraction=0.2,
            log=quiet)
    data = open_prepared(tmp_path / "data")
    assert data.tokenizer.kind == "bpe" and data.tokenizer.vocab_size == 500
    assert data.train.dtype == np.uint16 and data.meta["dtype"] == "uint16"
    ids = np.concatenate([data.train, data.val])
    assert ids.tolist() == data.tokenizer.tokenizer.encode(text).ids
    assert len(data.train) == int(0.8 * len(ids))
    assert data.tokenizer.decode(ids) == text


def test_token_dtype_is_the_narrowest_that_holds_the_vocabulary():
    assert [token_dtype(v).name for v in (65, 256, 257, 65536, 65537)] == [
        "uint8", "uint8", "uint16", "uint16", "uint32"]


def test_a_vocabulary_of_257_characters_is_written_in_16_bits_and_reads_back(tmp_path):
    """The one past uint8's 256 ids: its last id (256) would wrap to 0 in 8 bits, without a
    word (token_dtype alone is tested above, not prepare's use of it)."""
    text = "".join(chr(0x100 + i) for i in range(257)) * 4
    (tmp_path / "wide.txt").write_text(text, encoding="utf-8")
    prepare([str(tmp_path / "wide.txt")], tmp_path / "data", log=quiet)
    data = open_prepared(tmp_path / "data")
    assert data.tokenizer.vocab_size == 257 and data.train.dtype == np.uint16
    ids = np.concatenate([data.train, data.val])
    assert ids.max() == 256 and data.tokenizer.decode(ids) == text


def test_folders_and_globs_expand_to_sorted_files(tmp_path):
    for name in ("b.txt", "a.txt", "sub/c.txt", ".hidden", "data/meta.json"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("x")
    d = str(tmp_path)
    assert expand_inputs([d], out=tmp_path / "data") == [
        f"{d}/a.txt", f"{d}/b.txt", f"{d}/sub/c.txt"]
    assert expand_inputs([f"{d}/*.txt", f"{d}/a.txt"]) == [f"{d}/a.txt", f"{d}/b.txt"]


def test_each_file_is_read_once_however_often_the_inputs_name_it(tmp_path, capsys):
    """A second copy of a file would put held-out text in training: a link beside its file, a
    folder linked into itself under a recursive glob, or one file given twice."""
    books = tmp_path / "books"
    books.mkdir()
    (books / "a.txt").write_text("hello\n")
    (books / "latest.txt").symlink_to("a.txt")
    (books / "self").symlink_to(books)
    assert expand_inputs([str(books)]) == [f"{books}/a.txt"]
    assert "note: 1 of the inputs is a file already read" in capsys.readouterr().err
    assert expand_inputs([f"{books}/**", f"{books}/a.txt"]) == [f"{books}/a.txt"]
    assert expand_inputs([f"{books}/a.txt", f"{books}/a.txt"]) == [f"{books}/a.txt"]


def test_a_folder_reads_its_linked_folders_as_its_glob_does(tmp_path):
    """os.walk skipped a linked folder without a word, where `folder/**` read it."""
    books, other = tmp_path / "books", tmp_path / "other"
    books.mkdir()
    other.mkdir()
    (books / "a.txt").write_text("hello\n")
    (other / "b.txt").write_text("world\n")
    (books / "linked").symlink_to(other)
    (other / "back").symlink_to(books)  # a loop
    files = [f"{books}/a.txt", f"{books}/linked/b.txt"]
    assert expand_inputs([str(books)]) == files
    assert expand_inputs([f"{books}/**"]) == files


def test_a_file_name_that_is_not_utf8_is_refused_by_name(tmp_path):
    folder = tmp_path / "names"
    folder.mkdir()
    (folder / b"na\xffme.txt".decode(errors="surrogateescape")).write_text("x")
    with pytest.raises(UserError, match=r"the file name .*na\\udcffme.txt is not UTF-8"):
        expand_inputs([str(folder)])


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 4096])
def test_bad_utf8_is_reported_with_path_and_byte_offset(tmp_path, monkeypatch, chunk_bytes):
    monkeypatch.setattr(prepare_module, "CHUNK_BYTES", chunk_bytes)
    prefix = "aé€😀".encode()
    (tmp_path / "cut.txt").write_bytes(prefix + "€".encode()[:2])
    (tmp_path / "bad.txt").write_bytes(prefix + b"\xff" + b"tail")
    with pytest.raises(UserError, match=rf"cut\.txt ends in the middle .*offset {len(prefix)}"):
        list(read_text(str(tmp_path / "cut.txt")))
    with pytest.raises(UserError, match=rf"bad\.txt is not UTF-8.* offset {len(prefix)}"):
        list(read_text(str(tmp_path / "bad.txt")))


def test_a_character_the_first_pass_did_not_see_is_refused():
    with pytest.raises(UserError, match="changed while it was being prepared"):
        list(char_ids(["abcé"], CharTokenizer(list("abc")), np.dtype("uint8")))


def test_prepare_is_deterministic_and_a_rerun_is_a_no_op(corpus, tmp_path):
    paths, _ = corpus
    prepare(paths, tmp_path / "one", log=quiet)
    prepare(paths, tmp_path / "two", log=quiet)
    for name in FILES:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    mtimes = {n: (tmp_path / "one" / n).stat().st_mtime_ns for n in FILES}
    said = []
    assert not prepare(paths, tmp_path / "one", log=said.append)
    assert len(said) == 1 and "up to date" in said[0]
    assert mtimes == {n: (tmp_path / "one" / n).stat().st_mtime_ns for n in FILES}


def test_a_changed_input_or_setting_is_prepared_again(corpus, tmp_path):
    paths, text = corpus
    out = tmp_path / "data"
    prepare(paths, out, log=quiet)
    assert prepare(paths, out, val_fraction=0.5, log=quiet)
    assert open_prepared(out).meta["val_fraction"] == 0.5
    with open(paths[0], "r+b") as f:  # same size, new bytes: only the hash tells
        f.write(b"f")
    assert prepare(paths, out, val_fraction=0.5, log=quiet)
    data = open_prepared(out)
    assert data.tokenizer.decode(data.train)[0] == "f"
    before = (out / "train.bin").read_bytes()
    del data
    with open(out / "train.bin", "r+b") as f:  # the output damaged: written again
        f.write(b"\xff")
    assert prepare(paths, out, val_fraction=0.5, log=quiet)
    assert (out / "train.bin").read_bytes() == before


def test_an_earlier_dataset_among_the_inputs_is_not_read_as_text(corpus, tmp_path):
    """A folder of text that holds a prepared dataset (prepare --input=books --out=books/data):
    its token files and JSON are skipped; given as an --input itself, it is refused."""
    paths, text = corpus
    books = tmp_path / "books"
    books.mkdir()
    for path in paths:
        (books / Path(path).name).write_bytes(Path(path).read_bytes())
    prepare([str(books)], books / "data", log=quiet)
    assert expand_inputs([str(books)]) == [str(books / "a.txt"), str(books / "b.txt")]
    assert expand_inputs([f"{books}/**/*"]) == [str(books / "a.txt"), str(books / "b.txt")]
    with pytest.raises(UserError, match=r"--input=.*books/data is a prepared dataset, not text"):
        expand_inputs([str(books / "data")])
    with pytest.raises(UserError, match=r"--input=.*train.bin is a file of the prepared dataset"):
        expand_inputs([str(books / "data" / "train.bin")])


def test_bpe_prepare_is_byte_identical_across_processes(shakespeare_file, tmp_path):
    """Two fresh interpreters with other string hashes (forked from one server, both runs
    shared its hash seed: an output that depended on set order passed)."""
    path, _ = shakespeare_file
    for out, hash_seed in (("one", "1"), ("two", "2")):
        result = run_python(["-m", "gpt_jax.prepare", f"--input={path}",
                             f"--out={tmp_path / out}", "--tokenizer=bpe", "--vocab_size=500"],
                            env={"PYTHONHASHSEED": hash_seed})
        assert result.returncode == 0, result.stderr
    for name in FILES:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    again = run_python(["-m", "gpt_jax.prepare", f"--input={path}", f"--out={tmp_path / 'one'}",
                        "--tokenizer=bpe", "--vocab_size=500"])
    assert again.returncode == 0 and again.stderr == ""
    assert again.stdout.splitlines() == [f"{tmp_path / 'one'} is up to date with these inputs "
                                         "and settings; nothing to do"]


def test_prepare_refuses_a_datadir_that_a_trainer_reads(corpus, tmp_path):
    paths, _ = corpus
    out = tmp_path / "data"
    prepare(paths, out, log=quiet)
    with DataDirLock(out, exclusive=False), DataDirLock(out, exclusive=False):  # two trainers
        with pytest.raises(UserError, match="is in use by a training run"):
            prepare(paths, out, val_fraction=0.5, log=quiet)
        result = run_python(["-m", "gpt_jax.prepare", *(f"--input={p}" for p in paths),
                             f"--out={out}", "--val_fraction=0.5"])
        assert result.returncode == 2
        assert result.stderr.splitlines() == [
            f"error: {out} is in use by a training run (or another prepare); stop it, or "
            "prepare into another --out"]
    with DataDirLock(out, exclusive=True):
        with pytest.raises(UserError, match="being written by python -m gpt_jax.prepare"):
            DataDirLock(out, exclusive=False)
    assert prepare(paths, out, val_fraction=0.5, log=quiet)  # released: free again


def test_the_same_prepare_again_is_a_no_op_while_a_trainer_reads_the_folder(corpus, tmp_path):
    """`prepare && train` run again beside a training run was refused as "in use", although
    there was nothing to write."""
    paths, _ = corpus
    out = tmp_path / "data"
    prepare(paths, out, log=quiet)
    said = []
    with DataDirLock(out, exclusive=False):
        assert not prepare(paths, out, log=said.append)
    assert len(said) == 1 and "up to date" in said[0]


def test_a_failed_first_prepare_leaves_none_of_the_folders_it_made(corpus, tmp_path):
    """--out=new/a/b/data: a failure removed data and left new/a/b behind."""
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok ok ok\xff")  # found in the first pass, after the folders are made
    with pytest.raises(UserError, match="is not UTF-8 text"):
        prepare([str(bad)], tmp_path / "new" / "a" / "b" / "data", log=quiet)
    assert not (tmp_path / "new").exists()
    (tmp_path / "kept").mkdir()
    with pytest.raises(UserError, match="is not UTF-8 text"):
        prepare([str(bad)], tmp_path / "kept" / "a" / "data", log=quiet)
    assert os.listdir(tmp_path / "kept") == []


def test_a_meta_json_edited_to_another_token_width_is_refused_and_prepared_again(corpus,
                                                                                tmp_path):
    """uint16 ids read as uint8 (counts doubled to match the bytes): every byte is below the
    vocabulary, so training ran on garbage, and prepare called the folder up to date."""
    paths, _ = corpus
    out = tmp_path / "data"
    prepare(paths, out, log=quiet)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["dtype"] == "uint8"
    meta.update(dtype="uint16", train_tokens=meta["train_tokens"] // 2,
                val_tokens=meta["val_tokens"] // 2)
    (out / "meta.json").write_text(json.dumps(meta))
    if (out / "train.bin").stat().st_size % 2 or (out / "val.bin").stat().st_size % 2:
        (out / "train.bin").write_bytes((out / "train.bin").read_bytes()[:-1])
    with pytest.raises(UserError, match=r"dtype uint16 is not the one prepare writes for a "
                                        r"vocabulary of \d+ \(uint8\)"):
        open_prepared(out)
    assert prepare(paths, out, log=quiet)
    assert open_prepared(out).meta["dtype"] == "uint8"


def test_a_run_reads_the_token_files_it_opened_though_the_folder_is_replaced(corpus, tmp_path):
    """Windows read from disk reopened train.bin by name for every chunk: a folder deleted
    while a run trained ended it in a traceback, and one prepared again with other text was
    trained on without a word."""
    from gpt_jax.dataset import read_windows

    paths, _ = corpus
    out = tmp_path / "data"
    prepare(paths, out, log=quiet)
    data = open_prepared(out)
    starts = np.array([0, 5, 17])
    before = read_windows(data.train, starts, 9)
    np.testing.assert_array_equal(before, np.asarray(data.train)[starts[:, None] + np.arange(9)])
    shutil.rmtree(out)
    np.testing.assert_array_equal(read_windows(data.train, starts, 9), before)
    other = tmp_path / "other.txt"
    other.write_text("zzzz" * 1000, encoding="utf-8")
    prepare([str(other)], out, log=quiet)
    np.testing.assert_array_equal(read_windows(data.train, starts, 9), before)


def test_an_interrupted_prepare_keeps_the_old_dataset(corpus, tmp_path, monkeypatch):
    paths, text = corpus
    out = tmp_path / "data"
    prepare(paths, out, log=quiet)

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(prepare_module, "char_ids", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare(paths, out, val_fraction=0.5, log=quiet)
    data = open_prepared(out)
    assert data.meta["val_fraction"] == 0.1 and len(data.train) == int(0.9 * len(text))
    assert sorted(os.listdir(out)) == sorted([".lock", *FILES])


def test_a_crash_while_renaming_into_place_leaves_a_refused_folder(corpus, tmp_path,
                                                                    monkeypatch):
    paths, _ = corpus
    out = tmp_path / "data"
    prepare(paths, out, log=quiet)
    renames = []

    def replace_then_crash(src, dst):
        if len(renames) == 2:
            raise KeyboardInterrupt
        renames.append(dst)
        shutil.move(src, dst)

    monkeypatch.setattr(prepare_module.os, "replace", replace_then_crash)
    with pytest.raises(KeyboardInterrupt):
        prepare(paths, out, val_fraction=0.5, log=quiet)
    monkeypatch.undo()
    with pytest.raises(UserError, match="incomplete: meta.json missing; run python -m gpt_jax"):
        open_prepared(out)
    assert prepare(paths, out, val_fraction=0.5, log=quiet)  # and the next prepare mends it
    assert open_prepared(out).meta["val_fraction"] == 0.5


@pytest.mark.parametrize("name, put", [
    ("meta.json", Path.mkdir), ("train.bin", Path.mkdir), ("tokenizer.json", os.mkfifo),
    (".prepare-tmp", lambda path: path.write_text("notes"))])
def test_something_else_where_prepare_writes_is_refused_before_anything_is_replaced(
        corpus, tmp_path, name, put):
    """A folder at train.bin stopped the renames into place halfway, with a traceback: the
    earlier meta.json deleted, tokenizer.json replaced. Now nothing is touched."""
    paths, _ = corpus
    out = _prepared(tmp_path, corpus)
    if (out / name).exists():
        (out / name).unlink()
    put(out / name)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(UserError, match=rf"{re.escape(str(out / name))} is a (folder|FIFO|"
                                        rf"regular file), not a .*; move it away"):
        prepare(paths[:1], out, val_fraction=0.5, log=quiet)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_dataset_files_kept_as_links_are_not_refused(corpus, tmp_path):
    """DVC and git-annex leave a dataset's files as links to their store: a link to a file
    is what it points at, and a rename into place replaces the link, not its target."""
    out = _prepared(tmp_path, corpus)
    store = tmp_path / "store"
    store.mkdir()
    for name in ("train.bin", "meta.json"):
        os.replace(out / name, store / name)
        (out / name).symlink_to(store / name)
    assert not prepare(corpus[0], out, log=quiet)  # up to date: nothing to do
    assert prepare(corpus[0], out, val_fraction=0.5, log=quiet)  # and written again
    assert not (out / "train.bin").is_symlink() and open_prepared(out).meta["val_fraction"] == 0.5


TRAINING_FOR_MINUTES = """
import sys, time
from pathlib import Path
from gpt_jax import prepare

started, train_bpe = Path(sys.argv.pop(1)), prepare.train_bpe

def slow_corpus(texts, vocab_size):  # the trainer reads it on threads of its own
    def texts_then_more():
        yield from texts
        started.touch()
        time.sleep(600)
    return train_bpe(texts_then_more(), vocab_size)

prepare.train_bpe = slow_corpus
sys.argv[0] = "gpt_jax.prepare"
prepare.main()
"""


@pytest.mark.parametrize("signum, word, code", [(signal.SIGINT, "interrupted", 130),
                                                (signal.SIGTERM, "terminated", 143)])
def test_a_first_prepare_stopped_while_bpe_trains_leaves_no_folder(corpus, tmp_path, signum,
                                                                    word, code):
    """The BPE trainer is one long native call: a signal waited for the watch (stop.py),
    which ended the process before the cleanup, and the new --out stayed behind."""
    started, out = tmp_path / "started", tmp_path / "new"
    proc = subprocess.Popen(  # SIGINT as a shell's foreground command gets it (xdist ignores it)
        [*exec_with("default=INT"), sys.executable, "-c", TRAINING_FOR_MINUTES, str(started),
         f"--input={corpus[0][0]}", f"--out={out}", "--tokenizer=bpe", "--vocab_size=300"],
        cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if not started.exists():
        proc.kill()
        pytest.fail(f"the training never began: {proc.communicate()[1]}")
    assert out.is_dir()
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code and err.splitlines() == [word], err
    assert not out.exists()


def test_a_full_standard_output_is_named_and_the_dataset_kept(corpus, tmp_path):
    """The OSError of a write to /dev/full names no file: it was reported as a full disk
    under --out, whose disk was fine."""
    paths, _ = corpus
    out = _prepared(tmp_path, corpus)
    before = {name: (out / name).read_bytes() for name in FILES}
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "gpt_jax.prepare", f"--input={paths[0]}",
                                 f"--out={out}"], cwd=REPO, stdout=full, stderr=subprocess.PIPE,
                                text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == "error: cannot write standard output: No space left on device\n"
    assert {name: (out / name).read_bytes() for name in FILES} == before


def _prepared(tmp_path, corpus):
    out = tmp_path / "data"
    prepare(corpus[0], out, log=quiet)
    return out


def _edit_meta(out, **fields):
    meta = json.loads((out / "meta.json").read_text())
    meta.update(fields)
    for name, value in fields.items():
        if value is None:
            del meta[name]
    (out / "meta.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("damage, message", [
    (lambda out: (out / "meta.json").unlink(), "incomplete: meta.json missing"),
    (lambda out: [(out / n).unlink() for n in ("meta.json", "val.bin")],
     "incomplete: meta.json, val.bin missing"),
    (lambda out: os.truncate(out / "val.bin", 3), r"val\.bin holds 3 bytes but meta.json says"),
    (lambda out: _edit_meta(out, train_tokens=10**6), r"train\.bin holds .* interrupted"),
    (lambda out: _edit_meta(out, dtype="uint16"),
     r"dtype uint16 is not the one prepare writes for a vocabulary of \d+ \(uint8\)"),
    (lambda out: _edit_meta(out, vocab_size=300, dtype="uint16"), r"train\.bin holds .* of "
                                                                   r"uint16"),
    (lambda out: _edit_meta(out, vocab_size=3),
     rf"has {len(set(FIRST + SECOND))} symbols but meta.json says vocab_size = 3"),
    (lambda out: _edit_meta(out, sources=None), "lacks the field 'sources'"),
    (lambda out: _edit_meta(out, format_version=99), "format_version 99"),
    (lambda out: (out / "meta.json").write_text("{half"), r"cannot read .*meta\.json"),
    (lambda out: (out / "tokenizer.json").write_text("[]"), "not a tokenizer file"),
])
def test_open_prepared_refuses_an_incomplete_or_mismatched_folder(corpus, tmp_path, damage,
                                                                  message):
    out = _prepared(tmp_path, corpus)
    damage(out)
    with pytest.raises(UserError, match=message) as e:
        open_prepared(out)
    assert "\n" not in str(e.value)


def test_open_prepared_refuses_what_is_not_a_datadir(corpus, tmp_path):
    assert is_prepared_dir(_prepared(tmp_path, corpus))
    assert not is_prepared_dir(tmp_path) and not is_prepared_dir(corpus[0][0])
    with pytest.raises(UserError, match="not found"):
        open_prepared(tmp_path / "nowhere")
    with pytest.raises(UserError, match="not a folder"):
        open_prepared(corpus[0][0])
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "train.bin").write_bytes(b"\0" * 8)  # a prepare killed early
    assert is_prepared_dir(tmp_path / "half")
    with pytest.raises(UserError, match="half is incomplete: meta.json, val.bin, tokenizer.json"
                       " missing; run python -m gpt_jax.prepare"):
        open_prepared(tmp_path / "half")


def test_tokenizer_json_says_its_kind(corpus, tmp_path):
    out = _prepared(tmp_path, corpus)
    assert json.loads((out / "tokenizer.json").read_text())["type"] == "char"
    assert isinstance(load_tokenizer(out / "tokenizer.json"), CharTokenizer)


def _cli_cases(tmp_path):
    (tmp_path / "ok.txt").write_text("some text to prepare\n" * 5)
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "bom_only.txt").write_bytes(b"\xef\xbb\xbf")
    (tmp_path / "cut.txt").write_bytes("ab€".encode()[:-1])
    (tmp_path / "emptydir").mkdir()
    (tmp_path / "afile").write_text("x")
    ok, out = f"--input={tmp_path / 'ok.txt'}", f"--out={tmp_path / 'data'}"
    return [
        ([ok], "^error: --out is missing; usage: python -m gpt_jax.prepare"),  # which one, named
        ([out], "^error: --input is missing; usage: python -m gpt_jax.prepare"),
        ([f"--input={tmp_path / 'missing.txt'}", out], "input not found: .*missing.txt"),
        ([f"--input={tmp_path / '*.md'}", out], r"matches no files"),
        ([f"--input={tmp_path / 'emptydir'}", out], "holds no files"),
        ([f"--input={tmp_path}", f"--out={tmp_path}"],
         "every file it holds is inside the output folder"),
        ([f"--input={tmp_path / 'empty.txt'}", out], "hold no text: .*empty.txt is empty"),
        ([f"--input={tmp_path / 'bom_only.txt'}", out], "hold no text"),
        ([f"--input={tmp_path / 'cut.txt'}", out], r"cut\.txt ends in the middle .*offset 2"),
        ([ok, f"--input={tmp_path / 'cut.txt'}", out, "--tokenizer=bpe"], r"cut\.txt ends in"),
        ([ok, out, "--val_fraction=1"], r"--val_fraction must be in \(0, 1\)"),
        ([ok, out, "--val_fraction=0"], r"--val_fraction must be in \(0, 1\)"),
        ([ok, out, "--val_fraction=0.999"], "cannot be split"),
        ([ok, out, "--tokenizer=bpe", "--vocab_size=100"], "at least 256"),
        ([ok, out, "--vocab_size=300"], "--vocab_size is for --tokenizer=bpe"),
        ([ok, out, "--tokenizer=wordpiece"], "one of <char|bpe>"),
        ([ok, f"--out={tmp_path / 'afile'}"], "is a file, not a folder"),
        ([ok, out, "--no_such_flag"], "no_such_flag"),
    ]


def test_every_cli_error_is_one_line_and_exit_status_2(tmp_path):
    for args, message in _cli_cases(tmp_path):
        result = run_python(["-m", "gpt_jax.prepare", *args], timeout=60)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.stderr)
        assert re.search(message, lines[0]), (args, lines[0])
        assert not (tmp_path / "data").exists(), args  # a failed first prepare leaves nothing


def test_a_folder_that_prepare_did_not_write_is_refused_and_left_as_it_was(corpus, tmp_path):
    """nanoGPT's data folder holds a train.bin and a val.bin of its own: never overwritten.
    A dataset of prepare's, even beside a file of the user's, is prepared again as before."""
    paths, _ = corpus
    theirs = tmp_path / "nanogpt_data"
    theirs.mkdir()
    for name in ("train.bin", "val.bin", "meta.pkl"):
        (theirs / name).write_bytes(b"theirs")
    with pytest.raises(UserError, match="holds files that prepare did not write .*'meta.pkl'"):
        prepare(paths, theirs, log=quiet)
    (theirs / "meta.pkl").unlink()
    with pytest.raises(UserError, match="holds files that prepare did not write .*'train.bin'"):
        prepare(paths, theirs, log=quiet)
    assert {p.name: p.read_bytes() for p in theirs.iterdir()} == {
        name: b"theirs" for name in ("train.bin", "val.bin")}
    ours = tmp_path / "data"
    prepare(paths, ours, log=quiet)
    (ours / "README").write_text("notes")
    assert prepare(paths, ours, val_fraction=0.5, log=quiet)
    assert open_prepared(ours).meta["val_fraction"] == 0.5


def test_a_recursive_glob_reads_each_file_once(tmp_path):
    """`dir/**` matches the folder, its subfolders and their files: each file was read two
    or three times, its text in both splits."""
    (tmp_path / "many" / "sub").mkdir(parents=True)
    for name in ("a.txt", "b.txt", "sub/c.txt"):
        (tmp_path / "many" / name).write_text(name)
    found = expand_inputs([f"{tmp_path}/many/**"])
    assert sorted(found) == sorted(str(tmp_path / "many" / n) for n in ("a.txt", "b.txt",
                                                                         "sub/c.txt"))


def test_prepare_expands_a_tilde_as_every_path_flag_does(tmp_path):
    """bash leaves ~ in --out=~/data: prepare said "input not found" for --input=~/text.txt,
    and wrote --out=~/data into a folder named ~ under the working folder."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "text.txt").write_text("to be or not to be\n" * 20)
    result = run_python(["-m", "gpt_jax.prepare", "--input=~/text.txt", "--out=~/data"],
                        env={"HOME": str(home)}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (home / "data" / "meta.json").is_file() and not (tmp_path / "~").exists()


def test_prepare_out_of_memory_gives_its_own_advice_not_trainings():
    """It said 'use a smaller model, batch or block, more train.grad_accum_steps': flags that
    prepare does not have."""
    script = ("from gpt_jax import prepare\n"
              "def short_of_memory(argv):\n    raise MemoryError\n"
              "prepare._main = short_of_memory\nprepare.main()\n")
    result = run_python(["-c", script])
    assert result.returncode == 2
    assert result.stderr.startswith("error: out of memory while preparing: free memory for it")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("val_fraction, n, train", [(0.3, 90, 63), (0.9, 10, 1), (0.1, 10, 9)])
def test_the_split_is_the_val_fraction_as_written(tmp_path, val_fraction, n, train):
    """(1 - 0.3) in floats is below 0.7: 90 tokens split 62 + 28, and 10 tokens at 0.9 were
    refused as leaving no training token."""
    (tmp_path / "text.txt").write_text("abcdefghij"[:n] * (n // 10) if n >= 10 else "a" * n)
    prepare([str(tmp_path / "text.txt")], tmp_path / "data", val_fraction=val_fraction,
            log=quiet)
    meta = open_prepared(tmp_path / "data").meta
    assert (meta["train_tokens"], meta["val_tokens"]) == (train, n - train)


def test_the_bar_counts_megabytes_as_the_summary_does(monkeypatch):
    """The bar read 19.1M of a 20,000,000-byte input beside the summary's "20.0 MB"."""
    import sys

    from gpt_jax.prepare import _progress

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)  # a terminal's bar
    with _progress(20_000_000, "reading") as bar:
        bar.update(20_000_000)
        assert "20.0M/20.0M" in str(bar)
