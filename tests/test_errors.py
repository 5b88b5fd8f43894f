"""Bad input: one line on stderr, a non-zero exit, no traceback, and nothing lost.

One table; each case runs the real command line in a subprocess, then checks that the
checkpoints of an existing run are untouched and still restore.
"""

import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from tiny_config import file_config

from conftest import REPO, devices_env, free_port, run_python
from gpt_jax.pairs import PairVocab
from gpt_jax.restore import load_run
from gpt_jax.trainer import train_and_evaluate

TINY = (REPO / "tests" / "tiny_config.py").as_posix()
NOT_UTF8 = "lat\udcfc"  # a folder name with the byte 0xfc, which is not UTF-8 (latin-1's ü)
EIGHT_DEVICES = devices_env(8)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Data files and a trained run that the cases point at."""
    d = tmp_path_factory.mktemp("files")
    (d / "empty.txt").write_bytes(b"")
    (d / "latin1.txt").write_bytes("café crème".encode("latin-1"))
    (d / "short.txt").write_text("to be or n")  # 10 characters: the train split has 9
    (d / "small_val.txt").write_text("abcdefghij" * 10)  # val split of 10 < block_size + 1
    (d / "greek.txt").write_text("αβγδεζηθικλμ" * 100)
    (d / "prompts.txt").write_text("ROMEO:\nJULIET:\nhéllo\n")
    (d / "a_file").write_text("")
    (d / "pairs.tsv").write_text("".join(f"{n}\t{n * 2}\n" for n in range(30)))
    (d / "pairs_again.tsv").symlink_to(d / "pairs.tsv")
    (d / "dangling").symlink_to(d / "no_such_file")
    (d / "colon:folder").mkdir()
    shutil.copy(TINY, d / "colon:folder" / "tiny.py")
    (d / "tensorboard_is_a_file").mkdir()
    (d / "ladder_with_a_file").mkdir()
    (d / "ladder_with_a_file" / "bigram").write_text("")  # where the first step's folder goes
    (d / "tensorboard_is_a_file" / "tensorboard").write_text("")
    (d / "raises.py").write_text('def get_config():\n    raise ValueError("boom")\n')
    (d / "returns_none.py").write_text("def get_config():\n    return None\n")
    (d / "returns_five.py").write_text("def get_config():\n    return 5\n")
    (d / "no_description.py").write_text(  # read before validation: an AttributeError
        "from gpt_jax.config import base_config\n\ndef get_config():\n    config = "
        "base_config()\n    config.unlock()\n    del config['description']\n    return config\n")
    (d / "flags.bin").write_bytes(b"\xff\xfe--workdir=x\n")
    (d / "nests_a_pipe.flags").write_text(f"# a comment\n--flagfile={d / 'fifo'}\n")
    (d / "nests_latin1.flags").write_text(f"--flagfile={d / 'flags.bin'}\n")
    (d / "nests_itself.flags").write_text(f"--flagfile={d / 'nests_itself.flags'}\n")
    (d / "a_config.flags").write_text("--config=configs/bigram.py\n")
    (d / "typo.flags").write_text("--config.train.num_stepz=3\n")
    os.mkfifo(d / "fifo")
    (d / "checkpoints_is_a_file").mkdir()
    (d / "checkpoints_is_a_file" / "checkpoints").write_text("")
    run = d / "run"
    config = file_config()  # the model of TINY, which resumes it
    config.train.num_steps = 10
    train_and_evaluate(config, run)
    (d / "other_data").mkdir()  # a folder prepare did not write: nanoGPT's, say
    for name in ("train.bin", "val.bin", "meta.pkl"):
        (d / "other_data" / name).write_bytes(b"theirs")
    for name, train_py, prepared in (  # fake nanoGPT checkouts
            ("nanogpt_silent", "", ("train.bin", "val.bin", "meta.pkl")),
            ("nanogpt_fails", "raise SystemExit(3)\n", ("train.bin", "val.bin", "meta.pkl")),
            ("nanogpt_without_meta", "", ("train.bin", "val.bin"))):
        (d / name / "config").mkdir(parents=True)
        (d / name / "data" / "shakespeare_char").mkdir(parents=True)
        (d / name / "train.py").write_text(train_py)
        (d / name / "config" / "train_shakespeare_char.py").write_text("")
        for data in prepared:
            (d / name / "data" / "shakespeare_char" / data).write_bytes(b"")
    # workdir files: damaged copies of the run, and folders of runs to be, for the cases below
    for copy, name in (("fifo_config", "config.json"), ("fifo_vocab", "vocab.json"),
                       ("fifo_metrics", "metrics.jsonl"), ("fifo_lock", "train.lock"),
                       ("fifo_score", "checkpoints/10/metrics/metrics")):
        shutil.copytree(run, d / copy)
        (d / copy / name).unlink(missing_ok=True)
        os.mkfifo(d / copy / name)
    shutil.copytree(run, d / "zero_vocab")
    (d / "checkpoints_a_file").mkdir()  # a run's config and vocabulary, and no folder
    for name in ("config.json", "vocab.json"):
        shutil.copy(run / name, d / "checkpoints_a_file" / name)
    (d / "checkpoints_a_file" / "checkpoints").write_text("")
    (d / "loop").symlink_to(d / "loop")  # a workdir that links to itself
    (d / "config_is_a_folder" / "config.json").mkdir(parents=True)
    (d / "other_run" / "checkpoints").mkdir(parents=True)  # a run's, as far as its files say
    for name in ("config.json", "vocab.json"):
        (d / "other_run" / name).write_text("{}")
    shutil.copytree(run, d / "moved[1]" / "run")  # a run moved under a path orbax misreads
    shutil.copytree(run, d / NOT_UTF8 / "run")
    (d / "starting" / "checkpoints").mkdir(parents=True)  # a run before its config is saved
    (d / "starting" / "train.lock").write_text("12345")
    (d / "zero_vocab" / "vocab.json").unlink()
    (d / "zero_vocab" / "vocab.json").symlink_to("/dev/zero")
    for name in ("lad_config/bigram/seed_1337/config.json",
                 "lad_result/bigram/seed_1337/ladder_result.json",
                 "ctx/ngram_context1_5steps/metrics.jsonl"):
        (d / name).parent.mkdir(parents=True)
        os.mkfifo(d / name)
    vocabs = {"pairs_vocab": PairVocab(("a", "b")).to_json(),
              "chars_numbers": '{"chars": ["a", 1]}',
              "chars_null": '{"chars": ["a", null]}', "chars_words": '{"chars": ["a", "bc"]}',
              "chars_twice": '{"chars": ["a", "a"]}', "chars_not_a_list": '{"chars": "abc"}',
              "pairs_chars_null": '{"specials": ["<pad>", "<bos>", "<eos>"], "chars": [null]}',
              "pairs_chars_words": '{"specials": ["<pad>", "<bos>", "<eos>"], "chars": ["ab"]}'}
    for name, vocab in vocabs.items():
        shutil.copytree(run, d / name, ignore=shutil.ignore_patterns("checkpoints"))
        (d / name / "vocab.json").write_text(vocab)
    shutil.copytree(run, d / "pairs_config", ignore=shutil.ignore_patterns("checkpoints"))
    stored = json.loads((d / "pairs_config" / "config.json").read_text())
    stored["data"].update(task="pairs", max_source_len=3, max_target_len=3)
    (d / "pairs_config" / "config.json").write_text(json.dumps(stored))
    return d


_BUSY: list[socket.socket] = []


def _busy_port() -> int:
    """A port some socket is listening on, for as long as the tests run."""
    if not _BUSY:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen()
        _BUSY.append(s)
    return _BUSY[0].getsockname()[1]


def _snapshot(workdir):
    return {p: (p.stat().st_mtime_ns, p.stat().st_size)
            for p in workdir.rglob("*") if p.name != "train.lock"}


def train(*args):
    return lambda d: ["train.py", f"--config={TINY}", f"--workdir={d / 'run'}", *args]


def sample(*args, workdir: str = "run"):
    """The sampler's command on the fixture's run, or on another of its workdirs."""
    return lambda d: ["-m", "gpt_jax.sample", f"--workdir={d / workdir}", *args]


LONG_NAME = "a" * 300  # a file name longer than any file system allows (255 bytes)

CASES = {
    # config files and overrides
    "unknown_config_file": (lambda d: ["train.py", "--config=configs/nope.py",
                                       f"--workdir={d / 'run'}"],
                            "config file not found: configs/nope.py"),
    "config_without_get_config": (lambda d: ["train.py", "--config=gpt_jax/__init__.py",
                                             f"--workdir={d / 'run'}"],
                                  "config file gpt_jax/__init__.py has no get_config"),
    "variant_of_a_config_without_variants": (
        lambda d: ["train.py", "--config=configs/bigram.py:foo", f"--workdir={d / 'run'}"],
        "config file configs/bigram.py takes no ':variant', got 'foo'"),
    "config_whose_get_config_raises": (
        lambda d: ["train.py", f"--config={d / 'raises.py'}", f"--workdir={d / 'run'}"],
        "raises.py failed to load: ValueError: boom"),
    "config_whose_get_config_returns_none": (
        lambda d: ["train.py", f"--config={d / 'returns_none.py'}", f"--workdir={d / 'run'}"],
        r"get_config\(\) of .*returns_none.py returned None"),
    "override_given_twice": (train("--config.train.num_steps=5", "--config.train.num_steps=3"),
                             r"--config.train.num_steps is given more than once \(5, 3\): "
                             r"give it once"),
    "config_given_twice": (lambda d: ["train.py", "--config=configs/bigram.py",
                                      f"--config={TINY}", f"--workdir={d / 'run'}"],
                           r"--config is given more than once \(configs/bigram.py, .*tiny_"
                           r"config.py\): give one config file"),
    "flagfile_not_utf8": (lambda d: ["train.py", f"--flagfile={d / 'flags.bin'}"],
                          r"--flagfile=.*flags.bin is not UTF-8 text \(byte 0\)"),
    "unknown_variant": (lambda d: ["train.py", "--config=configs/lecture.py:transformer",
                                   f"--workdir={d / 'run'}"],
                        "unknown lecture step 'transformer'; choose one of head, multihead"),
    "val_path_of_a_text_task": (train("--config.data.val_path=held_out.tsv"),
                                "data.val_path names a file of held-out pairs"),
    "weight_decay_past_zero": (  # the weights times (1 - 1e-3 × 2000): flipped every step
        train("--config.train.learning_rate=1e-3", "--config.train.weight_decay=2000"),
        r"train.weight_decay × train.learning_rate = 2, .* must be < 1"),
    "muon_weight_decay_past_zero": (
        train("--config.train.optimizer=muon", "--config.train.muon_weight_decay=100"),
        r"train.muon_weight_decay × train.muon_learning_rate = 2, .* must be < 1"),
    "cosine_ending_above_its_peak": (
        train("--config.train.lr_schedule=cosine", "--config.train.min_learning_rate=1.0"),
        r"train.min_learning_rate \(1.0\) is above train.learning_rate"),
    # tensorstore reads `[...]` as a pattern and a backslash as a separator: a run there
    # trained "successfully" into checkpoints that never restored
    "config_file_is_a_folder": (
        lambda d: ["train.py", f"--config={TINY}", f"--workdir={d / 'config_is_a_folder'}"],
        r"config_is_a_folder/config.json is a folder, not a regular file: move it away"),
    # orbax would prune the other run's checkpoint with this run in it, or read this one's
    "workdir_inside_another_runs_checkpoints": (
        lambda d: ["train.py", f"--config={TINY}",
                   f"--workdir={d / 'run' / 'checkpoints' / '10'}"],
        r"workdir .*run/checkpoints/10 is inside the checkpoints of the run in .*run: choose a "
        r"folder outside .*run/checkpoints$"),
    "workdir_that_is_another_runs_checkpoints": (
        lambda d: ["train.py", f"--config={TINY}", f"--workdir={d / 'run' / 'checkpoints'}"],
        r"workdir .*run/checkpoints is the checkpoints folder of the run in .*run: choose a "
        r"folder outside .*run/checkpoints$"),
    # a byte that is not UTF-8 in the path: every save failed, and a restore called each
    # good checkpoint damaged and moved it aside
    "workdir_not_utf8": (
        lambda d: ["train.py", f"--config={TINY}", f"--workdir={d / NOT_UTF8 / 'new'}"],
        r"cannot keep checkpoints under .*lat\\udcfc/new: the checkpoint library needs UTF-8 "
        r"paths \(its checkpoints would all seem damaged\); a folder name there is not UTF-8 "
        r"text: rename it$"),
    "workdir_not_ascii_under_a_locale_not_utf8": (  # Python reads its bytes as ASCII
        lambda d: ["train.py", f"--config={TINY}", f"--workdir={d / 'wd é'}"],
        r"needs UTF-8 paths .*; this environment reads file names as ascii: set a UTF-8 "
        r"locale \(LC_ALL=C.UTF-8\)$",
        {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}),
    "sample_of_a_run_under_a_path_not_utf8": (
        sample(workdir=f"{NOT_UTF8}/run"),
        r"cannot keep checkpoints under .*lat\\udcfc/run/checkpoints: the checkpoint library "
        r"needs UTF-8 paths"),
    "workdir_that_links_to_itself": (  # mkdir said only "File exists"
        lambda d: ["train.py", f"--config={TINY}", f"--workdir={d / 'loop'}"],
        r"workdir .*loop is a symbolic link to .*loop, which does not exist or links back"),
    # links in a loop or to nothing said as such: they read "not found", though `ls` shows them
    "sample_workdir_in_a_link_loop": (sample(workdir="loop"),
                                      r"^error: workdir .*loop: Too many levels of symbolic links"),
    "prompts_in_a_link_loop": (lambda d: sample(f"--prompts={d / 'loop'}")(d),
                               r"^error: --prompts file .*loop: Too many levels of symbolic"),
    "flagfile_in_a_link_loop": (lambda d: ["train.py", f"--flagfile={d / 'loop'}"],
                                r"^error: --flagfile=.*loop: Too many levels of symbolic links"),
    "config_in_a_link_loop": (lambda d: ["train.py", f"--config={d / 'loop'}",
                                         f"--workdir={d / 'fresh'}"],
                              r"^error: --config=.*loop: Too many levels of symbolic links"),
    "data_path_a_dangling_link": (
        lambda d: ["train.py", f"--config={TINY}", f"--workdir={d / 'fresh'}",
                   f"--config.data.path={d / 'dangling'}"],
        r"^error: data file .*dangling: a symbolic link to .*no_such_file, which does not exist"),
    "config_under_a_folder_with_a_colon": (  # it said "config file not found: .../colon"
        lambda d: ["train.py", f"--config={d / 'colon:folder' / 'tiny.py'}",
                   f"--workdir={d / 'fresh'}"],
        r"^error: config .*colon:folder/tiny.py: a config file's path cannot hold ':'"),
    "workdir_a_fifo": (lambda d: ["train.py", f"--config={TINY}", f"--workdir={d / 'fifo'}"],
                       r"^error: workdir .*fifo is a FIFO, not a folder"),
    "sample_workdir_a_device": (lambda d: ["-m", "gpt_jax.sample", "--workdir=/dev/null"],
                                r"^error: workdir /dev/null is a device, not a run folder"),
    "tensorboard_is_a_file": (  # it said "cannot write .../tensorboard: File exists"
        lambda d: ["train.py", f"--config={TINY}", f"--workdir={d / 'tensorboard_is_a_file'}"],
        r"tensorboard_is_a_file/tensorboard is a file, not the folder of TensorBoard's events"),
    "ladder_step_folder_is_a_file": (  # it said "cannot read .../config.json: Not a directory"
        lambda d: ["-m", "gpt_jax.ladder", f"--workdir={d / 'ladder_with_a_file'}"],
        r"ladder_with_a_file/bigram is a file, not a folder: move it away"),
    # every step's config is checked before any trains: a model field that the bigram does not
    # read refused the whole ladder; it reaches the steps that read it, and the ladder goes on
    # (to the refusal of its workdir here, which comes after)
    "ladder_model_override_passes_the_steps_that_do_not_read_it": (
        lambda d: ["-m", "gpt_jax.ladder", f"--workdir={d / 'a_file'}",
                   "--config.model.compute_dtype=bfloat16", "--config.model.n_embd=64"],
        r"^error: workdir .*a_file is a file, not a folder$"),
    "workdir_with_brackets": (
        lambda d: ["train.py", f"--config={TINY}", f"--workdir={d / 'new[1]'}"],
        r"cannot keep checkpoints under .*new\[1\]: .*brackets \[...\]"),
    "workdir_with_a_backslash": (
        lambda d: ["train.py", f"--config={TINY}", f"--workdir={d / 'new' / 'a'}\\b"],
        r"cannot keep checkpoints under .*a\\b: .*a backslash"),
    "workdir_under_a_folder_ending_in_gs_colon": (  # orbax: "logs:/run" → "logs://run"
        lambda d: ["train.py", f"--config={TINY}", f"--workdir={d / 'logs:' / 'run'}"],
        r"cannot keep checkpoints under .*logs:/run: .*a folder name ending in 'gs:'"),
    "sample_from_a_run_moved_under_brackets": (
        sample(workdir="moved[1]/run"), r"cannot keep checkpoints under .*moved\[1\]/run/"),
    "resume_a_run_moved_under_brackets": (
        lambda d: ["train.py", f"--config={TINY}", f"--workdir={d / 'moved[1]' / 'run'}"],
        r"cannot keep checkpoints under .*moved\[1\]/run"),
    "ladder_seq2seq_with_modern": (lambda d: ["-m", "gpt_jax.ladder", f"--workdir={d / 'lad'}",
                                              "--seq2seq", "--modern"],
                                   "--seq2seq trains the encoder–decoder's comparison alone"),
    "typo_override": (train("--config.model.n_layr=2"),
                      r"unknown config field --config.model.n_layr \(did you mean "
                      r"'model.n_layer'\?\)"),
    "wrongly_typed_override": (train("--config.train.num_steps=ten"),
                               "--config.train.num_steps=ten: expected a value of type int"),
    "unknown_flag": (train("--worker=3"), "Unknown command line flag 'worker'"),
    # inconsistent model settings
    "heads_do_not_divide_width": (train("--config.model.n_head=3"),
                                  r"model.n_embd \(16\) must be divisible by model.n_head \(3\)"),
    "block_size_0": (train("--config.model.block_size=0"), "model.block_size must be >= 1"),
    "negative_width": (train("--config.model.n_embd=-8"), "model.n_embd must be >= 1"),
    "dropout_1": (train("--config.model.dropout=1.0"), r"model.dropout must be in \[0, 1\)"),
    "negative_dropout": (train("--config.model.dropout=-0.1"), r"must be in \[0, 1\)"),
    "batch_not_divisible_by_devices": (
        lambda d: ["train.py", f"--config={TINY}", f"--workdir={d / 'fresh8'}",
                   "--config.train.batch_size=12"],
        r"train.batch_size \(12\) must be divisible by .* = 8", EIGHT_DEVICES),
    # data
    "missing_data_file": (train(f"--config.data.path={REPO / 'nope.txt'}"),
                          "data file not found: .*nope.txt"),
    "empty_data_file": (lambda d: train(f"--config.data.path={d / 'empty.txt'}")(d),
                        "data file .*empty.txt is empty"),
    "non_utf8_data": (lambda d: train(f"--config.data.path={d / 'latin1.txt'}")(d),
                      r"latin1.txt is not UTF-8 text \(bad byte at offset 3\)"),
    "corpus_shorter_than_a_block": (
        lambda d: ["train.py", f"--config={TINY}", f"--workdir={d / 'fresh_short'}",
                   f"--config.data.path={d / 'short.txt'}", "--config.model.block_size=16"],
        r"the corpus has 10 tokens, fewer than block_size \+ 1 = 17"),
    "val_split_too_small": (
        lambda d: ["train.py", f"--config={TINY}", f"--workdir={d / 'fresh_val'}",
                   f"--config.data.path={d / 'small_val.txt'}", "--config.model.block_size=16"],
        r"the val split has 10 tokens, fewer than block_size \+ 1 = 17"),
    "data_outside_the_runs_vocabulary": (
        lambda d: train(f"--config.data.path={d / 'greek.txt'}")(d),
        "the data does not fit the vocabulary this run was trained with: character 'α' is "
        "not in the vocabulary"),
    # workdir
    "workdir_not_writable": (lambda d: ["train.py", f"--config={TINY}",
                                        f"--workdir={d / 'a_file' / 'run'}"],
                             "cannot create workdir .*a_file/run"),
    "workdir_of_a_user_that_does_not_exist": (
        lambda d: ["train.py", f"--config={TINY}", "--workdir=~no_such_user_here/run"],
        r"cannot expand ~no_such_user_here in ~no_such_user_here/run: no such user"),
    "pair_file_of_a_user_that_does_not_exist": (
        lambda d: ["train.py", "--config=configs/seq2seq.py", f"--workdir={d / 'fresh_user'}",
                   "--config.data.path=~no_such_user_here/pairs.tsv"],
        r"cannot expand ~no_such_user_here in ~no_such_user_here/pairs.tsv"),
    "workdir_name_too_long": (lambda d: ["train.py", f"--config={TINY}",
                                         f"--workdir={d / LONG_NAME}"],
                              "cannot use the path .*: File name too long"),
    "sample_workdir_name_too_long": (sample(workdir=LONG_NAME),
                                     "cannot use the path .*: File name too long"),
    "data_path_name_too_long": (train(f"--config.data.path=/tmp/{LONG_NAME}"),
                                "cannot use the path .*: File name too long"),
    "config_file_name_too_long": (lambda d: ["train.py", f"--config={d / LONG_NAME}.py",
                                             f"--workdir={d / 'run'}"],
                                  "File name too long"),
    "checkpoints_is_a_file": (lambda d: ["train.py", f"--config={TINY}",
                                         f"--workdir={d / 'checkpoints_is_a_file'}"],
                              "checkpoints_is_a_file/checkpoints is a file, not the folder of "
                              "this run's checkpoints"),
    "train_sample_too_long_for_memory": (train("--config.sample.max_new_tokens=2147483647"),
                                         r"lower --config.sample.max_new_tokens \(0: no "),
    "unknown_jax_platform": (sample(), "Unable to initialize backend 'nonsense'",
                             {"JAX_PLATFORMS": "nonsense"}),
    "jax_platform_not_on_this_machine": (  # (the CI machines have no NVIDIA GPU)
        sample(), "JAX_PLATFORMS=cuda: none of these platforms has a device on this machine",
        {"JAX_PLATFORMS": "cuda"}),
    "jax_64_bit": (train(), "JAX_ENABLE_X64=1: this project's arrays are float32, bfloat16 "
                   "and int32", {"JAX_ENABLE_X64": "1"}),
    "jax_64_bit_empty": (train(), "JAX_ENABLE_X64=: this project's arrays", {"JAX_ENABLE_X64": ""}),
    "jax_without_jit": (sample(), "JAX_DISABLE_JIT=true: the train and sampling steps are "
                        "compiled ahead of time", {"JAX_DISABLE_JIT": "true"}),
    # jax's checks that the steps trip on purpose, and settings jax cannot read: tracebacks
    "jax_nan_check": (train(), "JAX_DEBUG_NANS=1: the trainer stops on a non-finite loss or "
                      "gradient itself", {"JAX_DEBUG_NANS": "1"}),
    "jax_rank_promotion_raised": (train(), r"JAX_NUMPY_RANK_PROMOTION=raise: the commands run "
                                  r"with allow or warn only; unset it$",
                                  {"JAX_NUMPY_RANK_PROMOTION": "raise"}),
    "jax_transfers_guarded": (sample(), "JAX_TRANSFER_GUARD_HOST_TO_DEVICE=disallow: the "
                              "commands run with allow or log only",
                              {"JAX_TRANSFER_GUARD_HOST_TO_DEVICE": "disallow"}),
    "xla_flags_without_dashes": (train(), r"XLA_FLAGS=garbage: XLA reads a value that does not "
                                 r"start with -- as the name of a file of flags, and there is "
                                 r"no such file; write the flags as --name=value$",
                                 {"XLA_FLAGS": "garbage"}),
    "jax_setting_jax_cannot_read": (train(), r"JAX_DEFAULT_MATMUL_PRECISION=garbage: not a "
                                    r"value jax accepts; fix or unset it$",
                                    {"JAX_DEFAULT_MATMUL_PRECISION": "garbage"}),
    "jax_switch_jax_cannot_read": (sample(), r"JAX_LOG_COMPILES=maybe: jax reads it as on or "
                                   r"off \(1 or 0, true or false\); fix or unset it$",
                                   {"JAX_LOG_COMPILES": "maybe"}),
    "workdir_of_another_model": (train("--config.model.n_layer=3"),
                                 r"holds a checkpoint of a different model \(model.n_layer: "
                                 r"1 → 3\)"),
    "typo_in_config_file": (lambda d: ["train.py", f"--config={REPO / 'tests/config_with_typo.py'}",
                                       f"--workdir={d / 'run'}"],
                            r"sets an unknown field 'n_layers' \(did you mean 'n_layer'\?\)"),
    "override_of_a_section": (train("--config.model=3"), "--config.model is a section"),
    "override_without_value": (train("--config.model.n_layer"), "Missing value"),
    "bool_override_not_a_bool": (train("--config.model.ffwd=maybe"),
                                 "expected a value of type bool"),
    "override_float_for_int": (train("--config.train.num_steps=1e3"),
                               "expected a value of type int"),
    # out-of-range numbers
    "negative_seed": (train("--config.train.seed=-1"), r"train.seed must be in \[0, 2\^32 - 1\]"),
    "seed_beyond_int64": (train(f"--config.train.seed={2**64}"), "train.seed must be in"),
    "steps_beyond_int32": (train(f"--config.train.num_steps={2**31}"),
                           "train.num_steps must be <= 2147483647"),
    "negative_layers": (train("--config.model.n_layer=-1"), "model.n_layer must be >= 0"),
    "nan_learning_rate": (train("--config.train.learning_rate=nan"),
                          "train.learning_rate must be a positive number, got nan"),
    "infinite_learning_rate": (train("--config.train.learning_rate=inf"),
                               "train.learning_rate must be a positive number"),
    "beta2_of_1": (train("--config.train.beta2=1.0"), r"train.beta2 must be in \[0, 1\)"),
    "negative_weight_decay": (train("--config.train.weight_decay=-0.1"),
                              "train.weight_decay must be a number >= 0"),
    "nan_grad_clip": (train("--config.train.grad_clip=nan"), "train.grad_clip must be >= 0"),
    "zero_eval_iters": (train("--config.train.eval_iters=0"), "train.eval_iters must be >= 1"),
    "negative_warmup": (train("--config.train.warmup_steps=-5"),
                        "train.warmup_steps must be >= 0"),
    "negative_sample_length": (train("--config.sample.max_new_tokens=-1"),
                               "sample.max_new_tokens must be >= 0"),
    # resources: refused with the estimate before anything is allocated
    "block_that_cannot_fit_in_memory": (
        lambda d: ["train.py", f"--config={TINY}", f"--workdir={d / 'fresh_block'}",
                   "--config.model.block_size=100000"],
        r"training this config needs about [\d,.]+ GiB of memory \(activations of 8 sequences "
        r"of 100000 tokens.*lower train.batch_size or model.block_size"),
    "batch_that_cannot_fit_in_memory": (
        lambda d: ["train.py", "--config=configs/shakespeare_char_cpu.py",
                   f"--workdir={d / 'fresh_batch'}", "--config.train.batch_size=100000"],
        r"needs about [\d,.]+ GiB of memory \(activations of 100000 sequences"),
    "ngram_whose_size_is_past_a_float": (  # 65^201 parameters: the estimate still prints
        lambda d: ["train.py", "--config=configs/ngram.py", f"--workdir={d / 'fresh_ngram'}",
                   "--config.model.context=200"],
        r"training this config needs about 3\.7e356 GiB of memory"),
    "eval_batches_that_cannot_fit": (train("--config.train.eval_iters=100000000"),
                                     r"evaluation batches.*lower train.eval_iters"),
    "model_that_cannot_fit": (train("--config.model.n_embd=1000000", "--config.model.n_head=1"),
                              r"parameters, gradients and Adam's moments.*smaller model"),
    "data_path_is_a_pipe": (lambda d: train(f"--config.data.path={d / 'fifo'}")(d),
                            "data file path is not a regular file: .*fifo"),
    # distributed
    "coordinator_that_does_not_resolve": (
        train("--coordinator_address=no-such-host.invalid:1234", "--num_processes=2",
              "--process_id=1"), "the host 'no-such-host.invalid' does not resolve"),
    "coordinator_port_taken": (
        lambda d: train(f"--coordinator_address=127.0.0.1:{_busy_port()}", "--num_processes=2",
                        "--process_id=0")(d),
        "process 0 cannot serve the coordinator on port .*: Address already in use"),
    "peer_that_never_arrives": (
        lambda d: train(f"--coordinator_address=127.0.0.1:{free_port()}", "--num_processes=2",
                        "--process_id=0", "--distributed_timeout=3")(d),
        r"only some of the 2 processes joined within --distributed_timeout=3 s"),
    "zero_processes": (train("--coordinator_address=127.0.0.1:1", "--num_processes=0",
                             "--process_id=0"), r"--num_processes must be in \[1, 2\^20\]"),
    "negative_timeout": (train("--distributed_timeout=-1"),
                         r"--distributed_timeout must be in \(0, 1e6\]"),
    # sampling
    "sample_workdir_is_a_file": (sample(workdir="a_file"),
                                 "is a file, not a run folder"),
    "sample_negative_seed": (sample("--seed=-1"), r"--seed must be in \[0, 2\^32 - 1\]"),
    "sample_huge_seed": (sample(f"--seed={2**64}"), r"--seed must be in"),
    "sample_zero_tokens": (sample("--max_new_tokens=0"), "--max_new_tokens must be in"),
    "sample_that_cannot_fit_in_memory": (sample("--num_samples=100000000",
                                                "--max_new_tokens=100000"),
                                         r"sampling needs about [\d,.]+ GiB of memory"),
    "sample_infinite_temperature": (sample("--temperature=inf"),
                                    "--temperature must be a finite number > 0, got inf"),
    "sample_checkpoints_a_file": (  # it said "has no checkpoints yet"
        lambda d: ["-m", "gpt_jax.sample", f"--workdir={d / 'checkpoints_a_file'}"],
        r"checkpoints_a_file/checkpoints is a file, not the run's folder of checkpoints: move "
        r"it away$"),
    "sample_prompts_from_a_pipe": (lambda d: sample(f"--prompts={d / 'fifo'}")(d),
                                   r"--prompts .*fifo is a pipe: for prompts piped in, give "
                                   r"--prompts=-$"),
    "sample_positional_argument": (sample("extra"), "unexpected argument 'extra'"),
    "sample_text_too_long_to_hold": (sample(f"--max_new_tokens={2**31 - 1}"),
                                     r"sampling needs about [\d,.]+ GiB of memory"),
    # the command line itself
    "positional_argument": (train("config.train.num_steps=5"),
                            "unexpected argument 'config.train.num_steps=5'"),
    "arguments_after_double_dash": (train("--", "--config.train.num_steps=5"),
                                    "unexpected argument '--config.train.num_steps=5'"),
    "config_in_a_flagfile_and_on_the_command_line_with_overrides": (
        lambda d: train(f"--flagfile={d / 'a_config.flags'}", "--config.train.num_steps=5")(d),
        r"--config is given in two places \(.*tiny_config.py on the command line; "
        r"configs/bigram.py \(in --flagfile=.*a_config.flags\)\) with --config.field "
        r"overrides"),
    "a_flag_of_one_value_twice": (train("--workdir=elsewhere"),
                                  r"--workdir is given twice \(--workdir=.*run, "
                                  r"--workdir=elsewhere\): give it once"),
    "sample_prompt_twice": (sample("--prompt=ab", "--prompt=cd"),
                            r"--prompt is given twice \(--prompt=ab, --prompt=cd\)"),
    "config_returning_a_number": (
        lambda d: ["train.py", f"--config={d / 'returns_five.py'}", f"--workdir={d / 'x'}"],
        r"get_config\(\) of .*returns_five.py returned 5, not a config \(an "
        r"ml_collections.ConfigDict\)$"),
    "config_with_an_empty_variant": (  # read as the default, as unknown or as none by turns
        lambda d: ["train.py", "--config=configs/lecture.py:", f"--workdir={d / 'x'}"],
        r"^error: config 'configs/lecture.py:' ends in ':' without a variant: drop the ':', or "
        r"name a variant$"),
    "config_file_without_a_description": (
        lambda d: ["train.py", f"--config={d / 'no_description.py'}", f"--workdir={d / 'x'}"],
        r"the config lacks the field description: start config files from "
        r"gpt_jax.config.base_config\(\)$"),
    "config_empty": (lambda d: ["train.py", "--config=", f"--workdir={d / 'x'}"],
                     r"^error: --config is empty: give a config file$"),
    "flagfile_missing": (train("--flagfile=/no/such/flags"),
                         "--flagfile=/no/such/flags: file not found"),
    "flagfile_is_a_pipe": (lambda d: train(f"--flagfile={d / 'fifo'}")(d),
                           "--flagfile=.*fifo: not a regular file"),
    "flagfile_nesting_a_pipe": (
        lambda d: train(f"--flagfile={d / 'nests_a_pipe.flags'}")(d),
        r"--flagfile=.*fifo \(in --flagfile=.*nests_a_pipe.flags\): not a regular file"),
    "flagfile_nesting_one_not_utf8": (
        lambda d: train(f"--flagfile={d / 'nests_latin1.flags'}")(d),
        r"--flagfile=.*flags.bin \(in --flagfile=.*nests_latin1.flags\) is not UTF-8 text"),
    "flagfile_including_itself": (
        lambda d: train(f"--flagfile={d / 'nests_itself.flags'}")(d),
        r"--flagfile=.*nests_itself.flags \(in --flagfile=.*nests_itself.flags\) includes "
        r"itself"),
    "unknown_field_in_a_flagfile": (  # it blamed the config file, in a repr of a KeyError
        lambda d: train(f"--flagfile={d / 'typo.flags'}")(d),
        r"unknown config field --config.train.num_stepz \(did you mean 'train.num_steps'\?\) "
        r"\(in --flagfile=.*typo.flags\)$"),
    "config_file_is_a_pipe": (lambda d: ["train.py", f"--config={d / 'fifo'}",
                                         f"--workdir={d / 'run'}"],
                              "--config=.*fifo: not a regular file"),
    "pairs_from_a_pipe": (lambda d: ["train.py", "--config=configs/seq2seq.py",
                                     f"--workdir={d / 'fresh_pairs'}",
                                     f"--config.data.path={d / 'fifo'}"],
                          "pair file path is not a regular file"),
    "sample_at_each_evaluation_too_long": (train(f"--config.sample.max_new_tokens={2**31 - 1}"),
                                           r"the sample at each evaluation .* needs about"),
    "dropout_of_a_model_without_it": (
        lambda d: ["train.py", f"--config={REPO / 'configs' / 'bigram.py'}",
                   f"--workdir={d / 'run'}", "--config.model.dropout=0.1"],
        "the bigram model has no dropout"),
    "layers_of_a_model_without_them": (  # ignored without a word, though the run trained
        train("--config.model.name=bigram"),
        "model.n_embd is not read by the bigram model, which would ignore it: leave it at 32"),
    # sampling
    "prompt_outside_vocabulary": (sample("--prompt=héllo"),
                                  "character 'é' is not in the vocabulary of 65 characters"),
    # A byte that is not UTF-8 was named as a surrogate, '\udcc3', "not in the vocabulary"
    # (a BPE run's: a traceback); now the byte typed, as a --prompts file's is.
    "prompt_not_utf8": (sample("--prompt=caf\udcc3"),
                        r"^error: --prompt: not UTF-8 text \(byte 0xc3 at byte column 4\)$"),
    "sample_slide_without_the_cache": (sample("--no_cache", "--slide=2"),
                                       "--slide is the KV cache's: --no_cache re-reads"),
    "prompts_file_line_outside_vocabulary": (
        lambda d: sample(f"--prompts={d / 'prompts.txt'}")(d),
        "--prompts .*prompts.txt, line 3: character 'é' is not in the vocabulary of 65"),
    "temperature_0": (sample("--temperature=0"),
                      "--temperature must be a finite number > 0, got 0.0"),
    "top_p_0": (sample("--top_p=0"), r"--top_p must be in \(0, 1\], got 0.0"),
    "top_p_above_1": (sample("--top_p=1.5"), r"--top_p must be in \(0, 1\], got 1.5"),
    "top_k_0": (sample("--top_k=0"), "--top_k must be >= 1, got 0"),
    "top_k_above_the_vocabulary": (sample("--top_k=100000"), r"--top_k=100000 is more than "
                                   r"the run's vocabulary of \d+ tokens"),
    "missing_step": (sample("--step=7"), "no checkpoint at step 7 in .*; available: 10"),
    "workdir_without_checkpoints": (lambda d: ["-m", "gpt_jax.sample", f"--workdir={d}"],
                                    "is not a training run: config.json or vocab.json"),
    "sample_of_a_run_starting": (  # was "not a training run: config.json ... is missing"
        sample(workdir="starting"), r"workdir .*starting has no checkpoint yet: a run is "
                                    r"starting there \(train.lock is there, config.json not "
                                    r"yet\); sample it once it has saved its first checkpoint"),
    "missing_workdir": (sample(workdir="nope"),
                        "workdir not found"),
    # the benchmarks are commands too
    "benchmark_steps_0": (lambda d: ["benchmarks/bench.py", "--steps=0"],
                          "flag --steps=0: 0 is not a positive integer"),
    "benchmark_without_nanogpt": (lambda d: ["benchmarks/time_to_loss.py"],
                                  "pass --nanogpt=DIR, a checkout of karpathy/nanoGPT"),
    "benchmark_nanogpt_not_a_checkout": (
        lambda d: ["benchmarks/time_to_loss.py", f"--nanogpt={d}"],
        "is not a nanoGPT checkout: no train.py in it"),
    "benchmark_set_of_an_unknown_field": (  # found before nanoGPT's minute-long run
        lambda d: ["benchmarks/time_to_loss.py", f"--nanogpt={d}", "--set=model.n_layr=2"],
        r"unknown config field --config.model.n_layr \(did you mean 'model.n_layer'\?\)"),
    "benchmark_seeds_not_integers": (
        lambda d: ["benchmarks/time_to_loss.py", f"--nanogpt={d}", "--seeds=1,two"],
        "--seeds takes non-negative integers separated by commas"),
    "benchmark_seed_set_twice": (
        lambda d: ["benchmarks/time_to_loss.py", f"--nanogpt={d}", "--set=train.seed=3"],
        "give the seeds as --seeds=S1,S2"),
    "bench_beside_nanogpt_on_two_devices": (  # ours on both, nanoGPT on one: a 2x speed-up
        lambda d: ["benchmarks/bench.py", f"--nanogpt={d / 'nanogpt_silent'}",
                   "--configs=shakespeare_char_cpu.py", f"--out={d / 'bench.json'}"],
        "--nanogpt times nanoGPT on one device, and ours would train on all 2 of this machine",
        devices_env(2)),
    "data_at_scale_bpe_vocab_past_prepare_s_limit": (  # refused after the corpus was made
        lambda d: ["benchmarks/data_at_scale.py", f"--scratch={d / 'scale'}",
                   "--bpe_vocab=2000000", f"--out={d / 'scale.json'}"],
        r"flag --bpe_vocab=2000000: 2000000 is not an integer in the range \[256, 1048576\]"),
    "benchmark_of_a_missing_run": (
        lambda d: ["benchmarks/translation.py", f"--workdir={d / 'nope'}"], "workdir not found"),
    # numbers: past float32 or a seed's 32 bits, counts past what the run holds, files of others
    "sample_temperature_below_float32": (
        sample("--temperature=1e-40"), r"--temperature=1e-40 is below float32's smallest normal "
                                       r"number .*: it would compute as 0; .* use --top_k=1"),
    "sample_top_p_below_float32": (sample("--top_p=1e-40"),
                                   "--top_p=1e-40 is below float32's smallest normal number"),
    "sample_temperature_past_float32": (sample("--temperature=1e300"),
                                        r"--temperature=1e\+300 is past float32's range"),
    "learning_rate_past_float32": (train("--config.train.learning_rate=1e39"),
                                   r"train.learning_rate=1e\+39 is past float32's range"),
    "grad_clip_past_float32": (train("--config.train.grad_clip=1e39"),
                               r"train.grad_clip=1e\+39 is past float32's range"),
    "logit_softcap_below_float32": (train("--config.model.logit_softcap=1e-40"),
                                    "model.logit_softcap=1e-40 is below float32's smallest"),
    "beta2_that_rounds_to_1": (train("--config.train.beta2=0.99999999"),
                               "train.beta2=0.99999999 rounds to 1 in float32"),
    "seed_of_2_to_the_32": (train(f"--config.train.seed={2**32}"),
                            r"train.seed must be in \[0, 2\^32 - 1\], got 4294967296"),
    "sample_seed_of_2_to_the_32": (sample(f"--seed={2**32}"), r"--seed must be in \[0, 2\^32"),
    "ladder_seed_of_2_to_the_32": (  # the first step refuses it, before any folder is made
        lambda d: ["-m", "gpt_jax.ladder", f"--workdir={d / 'lad_seed'}",
                   f"--config.train.seed={2**32}"],
        r"^error: step bigram \(bigram.py\): train.seed must be in \[0, 2\^32 - 1\]"),
    "ladder_on_data_that_is_not_there": (  # it left new/bigram/ behind, empty
        lambda d: ["-m", "gpt_jax.ladder", f"--workdir={d / 'new'}",
                   f"--config.data.path={d / 'no_such_corpus.txt'}"],
        r"^error: data file not found: .*no_such_corpus.txt$"),
    "seq2seq_ladder_step_that_refuses_an_override": (
        lambda d: ["-m", "gpt_jax.ladder", f"--workdir={d / 'lad_s2s'}", "--seq2seq",
                   "--config.model.block_size=12"],
        r"^error: step gpt_on_pairs \(seq2seq.py:gpt\): model.block_size \(12\) must hold"),
    "ladder_given_a_config_file": (  # config_flags: "Overriding config is not allowed"
        lambda d: ["-m", "gpt_jax.ladder", f"--workdir={d / 'lad_file'}",
                   "--config=configs/bigram.py"],
        r"^error: --config=configs/bigram.py: this command trains config files of its own; "
        r"change a field of every one with --config.section.field=value$"),
    "modern_ladder_with_a_seed": (
        lambda d: ["-m", "gpt_jax.ladder", f"--workdir={d / 'lad_modern_seed'}", "--modern",
                   "--config.train.seed=5"],
        r"--config.train.seed: with --modern, the CPU GPT and each modern rung run seeds 1337 "
        r"and 1"),
    "benchmark_eval_interval_past_int32": (  # found before nanoGPT's minutes, not after
        lambda d: ["benchmarks/time_to_loss.py", f"--nanogpt={d}", "--eval_interval=3000000000"],
        r"train.eval_interval must be <= 2147483647"),
    "benchmark_seeds_of_2_to_the_32": (
        lambda d: ["benchmarks/time_to_loss.py", f"--nanogpt={d}", f"--seeds=1,{2**32}"],
        r"--seeds must each be in \[0, 2\^32 - 1\]"),
    "benchmark_seed_given_twice": (  # reported as the mean over 2 seeds
        lambda d: ["benchmarks/time_to_loss.py", f"--nanogpt={d}", "--seeds=1,2,01"],
        r"--seeds names a seed twice: one run repeated is not a mean over seeds"),
    "inspect_more_blocks_than_the_split_holds": (
        lambda d: ["-m", "gpt_jax.inspect", f"--workdir={d / 'run'}", "--prompt=ROMEO",
                   "--blocks=2147483647"],
        r"--blocks=2147483647 is more than the [\d,]+ windows of block_size \+ 1 = 9 tokens"),
    "inspect_top_past_the_vocabulary": (
        lambda d: ["-m", "gpt_jax.inspect", f"--workdir={d / 'run'}", "--prompt=ROMEO",
                   "--top=66"], "--top=66 is more than the run's vocabulary of 65 tokens"),
    "inspect_out_inside_the_checkpoints": (  # a folder there read as a damaged checkpoint
        lambda d: ["-m", "gpt_jax.inspect", f"--workdir={d / 'run'}", "--prompt=ROMEO",
                   f"--out={d / 'run' / 'checkpoints' / '20'}"],
        r"--out=.*run/checkpoints/20 is inside .*run/checkpoints, which holds the checkpoints "
        r"of a run"),
    "inspect_out_inside_another_runs_checkpoints": (  # that run's newest checkpoint, damaged
        lambda d: ["-m", "gpt_jax.inspect", f"--workdir={d / 'run'}", "--prompt=ROMEO",
                   f"--out={d / 'other_run' / 'checkpoints' / '40'}"],
        r"--out=.*other_run/checkpoints/40 is inside .*other_run/checkpoints, which holds the "
        r"checkpoints of a run"),
    "inspect_out_a_dangling_link": (  # it said "File exists"
        lambda d: ["-m", "gpt_jax.inspect", f"--workdir={d / 'run'}", "--prompt=ROMEO",
                   f"--out={d / 'dangling'}"],
        r"--out=.*dangling: a symbolic link to .*no_such_file, which does not exist$"),
    "inspect_step_past_int32": (  # it said "must be >= 0"
        lambda d: ["-m", "gpt_jax.inspect", f"--workdir={d / 'run'}", "--prompt=ROMEO",
                   "--step=99999999999"], r"--step must be in \[0, 2147483647\], got 99999999999"),
    "inspect_prompt_not_utf8": (
        lambda d: ["-m", "gpt_jax.inspect", f"--workdir={d / 'run'}", "--prompt=\udcff"],
        r"^error: --prompt: not UTF-8 text \(byte 0xff at byte column 1\)$"),
    "inspect_out_is_a_file": (
        lambda d: ["-m", "gpt_jax.inspect", f"--workdir={d / 'run'}", "--prompt=ROMEO",
                   f"--out={d / 'a_file'}"], r"--out=.*a_file is a file, not a folder"),
    "val_path_of_the_shipped_pairs": (
        lambda d: ["train.py", "--config=configs/seq2seq.py", f"--workdir={d / 'fresh_s2s'}",
                   "--config.data.val_path=held_out.tsv"],
        "data.val_path holds out pairs of a data.path of your own"),
    "val_path_is_the_training_file": (  # through a symlink: the same file, by any name
        lambda d: ["train.py", "--config=configs/seq2seq.py", f"--workdir={d / 'fresh_s2s'}",
                   f"--config.data.path={d / 'pairs.tsv'}",
                   f"--config.data.val_path={d / 'pairs_again.tsv'}"],
        r"data.val_path=.*pairs_again.tsv is data.path itself: held-out pairs must be pairs the "
        r"model does not train on"),
    "val_path_is_the_training_file_under_home": (  # ~ expanded before they are compared
        lambda d: ["train.py", "--config=configs/seq2seq.py", f"--workdir={d / 'fresh_s2s'}",
                   "--config.data.path=~/pairs.tsv", "--config.data.val_path=~/pairs_again.tsv"],
        r"data.val_path=.*/pairs_again.tsv is data.path itself", lambda d: {"HOME": str(d)}),
    "prepare_into_a_folder_of_other_files": (
        lambda d: ["-m", "gpt_jax.prepare", f"--input={d / 'greek.txt'}",
                   f"--out={d / 'other_data'}"],
        r"--out=.*other_data holds files that prepare did not write \(such as 'meta.pkl'\)"),
    "ngram_of_a_context_near_2_to_the_31": (  # refused from logarithms, not by counting 65^n
        lambda d: ["train.py", "--config=configs/ngram.py", f"--workdir={d / 'fresh_ngram'}",
                   f"--config.model.context={2**31 - 1}"],
        r"needs about 6\.4e3893201780 GiB of memory \(an n-gram table of 65\^2147483648 "
        r"parameters\): lower model.context"),
    "seq2seq_of_sources_too_long_to_fit": (  # refused before 30 s of padding every pair
        lambda d: ["train.py", "--config=configs/seq2seq.py", f"--workdir={d / 'fresh_s2s'}",
                   "--config.data.max_source_len=100000"],
        r"training this config needs about [\d,.]+ GiB of memory \(activations of 64 sequences "
        r"of sources of 100000 and targets of 11 tokens and their gradients: [\d,.]+ GiB\); this "
        r"machine has .*: lower train.batch_size, data.max_source_len or data.max_target_len"),
    "mlp_of_a_context_of_ten_million": (  # counted from its shapes, not traced 10^7 times
        lambda d: ["train.py", "--config=configs/mlp.py", f"--workdir={d / 'fresh_mlp'}",
                   "--config.model.context=10000000"],
        r"training this config needs about [\d,.]+ GiB of memory"),
    # benchmarks: refused before any work (their result is written after minutes or hours)
    "benchmark_of_a_config_that_cannot_fit": (  # it hung in replicating the state
        lambda d: ["benchmarks/bench.py", "--configs=shakespeare_char_cpu.py", "--nosampling",
                   f"--out={d / 'bench.json'}", "--set=model.n_embd=131072",
                   "--set=model.n_head=1"],
        r"^error: training shakespeare_char_cpu.py needs about [\d,.]+ GiB of memory"),
    "profile_of_a_config_that_cannot_fit": (
        lambda d: ["benchmarks/profile_step.py", "--config=shakespeare_char_cpu.py",
                   "--override=model.n_embd=131072", "--override=model.n_head=1"],
        r"^error: training shakespeare_char_cpu.py needs about [\d,.]+ GiB of memory"),
    "benchmark_out_is_a_folder": (lambda d: ["benchmarks/bench.py", f"--out={d}"],
                                  "--out=.* is a folder; name the file to write"),
    "benchmark_out_under_a_file": (
        lambda d: ["benchmarks/sampling.py", f"--out={d / 'a_file' / 'sampling.json'}"],
        "--out=.*: .*a_file is a file, not a folder"),
    "benchmark_out_in_an_unwritable_folder": (
        lambda d: ["benchmarks/translation.py", "--out=/sys/translation.json"],
        "--out=/sys/translation.json: cannot write in /sys"),
    "benchmark_data_at_scale_out_is_a_folder": (
        lambda d: ["benchmarks/data_at_scale.py", f"--out={d}", f"--scratch={d / 'scratch'}"],
        "--out=.* is a folder"),
    "benchmark_time_to_loss_out_under_a_file": (
        lambda d: ["benchmarks/time_to_loss.py", f"--nanogpt={d / 'nanogpt_silent'}",
                   f"--out={d / 'a_file' / 'time_to_loss.json'}"],
        "--out=.*: .*a_file is a file, not a folder"),
    "benchmark_trace_dir_is_a_file": (
        lambda d: ["benchmarks/profile_step.py", f"--trace_dir={d / 'a_file'}"],
        "--trace_dir=.*a_file is a file, not a folder"),
    "bench_of_the_encoder_decoder": (
        lambda d: ["benchmarks/bench.py", "--configs=seq2seq.py", f"--out={d / 'bench.json'}"],
        "--configs=seq2seq.py trains on source → target pairs; this benchmark times the "
        "decoder-only GPT on text .*benchmarks/translation.py"),
    "sampling_benchmark_config_named_from_the_repo": (
        lambda d: ["benchmarks/sampling.py", "--configs=configs/seq2seq.py",
                   f"--out={d / 'sampling.json'}"],
        "--configs=configs/seq2seq.py: name the file as under configs/, as in "
        "--configs=seq2seq.py"),
    "sampling_benchmark_of_the_encoder_decoder": (
        lambda d: ["benchmarks/sampling.py", "--configs=seq2seq.py:gpt",
                   f"--out={d / 'sampling.json'}"], "seq2seq.py:gpt trains on source → target"),
    "translation_benchmark_of_a_gpt_run": (
        lambda d: ["benchmarks/translation.py", f"--workdir={d / 'run'}",
                   f"--out={d / 'translation.json'}"],
        "--workdir=.*run is a run of the gpt model; .*pass a run of configs/seq2seq.py"),
    "translation_benchmark_of_an_empty_workdir": (  # not the untrained model, quietly
        lambda d: ["benchmarks/translation.py", "--workdir=", f"--out={d / 'translation.json'}"],
        "--workdir is empty: give a path"),
    "prompts_flag_empty": (sample("--prompts="), "--prompts is empty: give a path"),
    "prepare_input_empty": (lambda d: ["-m", "gpt_jax.prepare", "--input=",
                                       f"--out={d / 'prepared'}"], "--input is empty"),
    "prepare_out_empty": (lambda d: ["-m", "gpt_jax.prepare", f"--input={d / 'greek.txt'}",
                                     "--out="], "--out is empty: give a path"),
    "bench_set_of_an_impossible_value": (  # validated: it was a traceback of the sampler's
        lambda d: ["benchmarks/bench.py", "--configs=bigram.py", "--set=train.batch_size=0",
                   "--steps=2", f"--out={d / 'bench.json'}"],
        "train.batch_size must be >= 1, got 0"),
    "profile_step_override_of_an_impossible_value": (
        lambda d: ["benchmarks/profile_step.py", "--config=bigram.py",
                   "--override=model.n_head=0", f"--trace_dir={d / 'trace'}"],
        "model.n_head must be >= 1, got 0"),
    "time_to_loss_eval_interval_as_a_set": (
        lambda d: ["benchmarks/time_to_loss.py", "--set=train.eval_interval=100",
                   f"--nanogpt={d}", f"--out={d / 'ttl.json'}"],
        r"--set=train.eval_interval=...: give it as --eval_interval=N"),
    "translation_benchmark_batch_past_memory": (  # was a traceback, or the OOM killer
        lambda d: ["benchmarks/translation.py", "--batch=100000000", "--repeats=1",
                   f"--out={d / 'translation.json'}"],
        r"decoding needs about .* of memory .*: lower --batch"),
    "sampling_benchmark_new_tokens_past_int32": (
        lambda d: ["benchmarks/sampling.py", "--new_tokens=3000000000",
                   f"--out={d / 'sampling.json'}"],
        r"--new_tokens=3000000000: .* range \[1, 2147483647\]"),
    "sampling_benchmark_new_tokens_past_memory": (
        lambda d: ["benchmarks/sampling.py", "--new_tokens=2000000000",
                   "--configs=shakespeare_char_cpu.py", f"--out={d / 'sampling.json'}"],
        r"sampling needs about .* of memory .*: lower --new_tokens"),
    "data_at_scale_infinite_gigabytes": (
        lambda d: ["benchmarks/data_at_scale.py", "--gigabytes=inf", f"--scratch={d / 'scratch'}"],
        "--gigabytes must be a positive number, got inf"),
    "data_at_scale_more_gigabytes_than_the_disk": (
        lambda d: ["benchmarks/data_at_scale.py", "--gigabytes=1e12",
                   f"--scratch={d / 'scratch'}", f"--out={d / 'scale.json'}"],
        r"--gigabytes=1e\+12: the corpus and its prepared tokens need about .* GB in "
        r"--scratch=.*scratch, which has .* GB for them"),
    "data_at_scale_one_step": (  # the only step compiles: no rate, a traceback at the end
        lambda d: ["benchmarks/data_at_scale.py", "--steps=1", f"--scratch={d / 'scratch'}",
                   f"--out={d / 'scale.json'}"], "flag --steps=1: 1 is not integer >= 2"),
    "data_at_scale_gigabytes_below_one_copy": (  # an empty corpus, refused inside prepare
        lambda d: ["benchmarks/data_at_scale.py", "--gigabytes=1e-12",
                   f"--scratch={d / 'scratch'}", f"--out={d / 'scale.json'}"],
        r"--gigabytes=1e-12: the corpus is whole copies of tiny Shakespeare \(1.1 MB\): give "
        r"at least 0.0012"),
    "data_at_scale_steps_past_int32": (  # refused by train.py after minutes of preparing
        lambda d: ["benchmarks/data_at_scale.py", f"--steps={10**12}",
                   f"--scratch={d / 'scratch'}", f"--out={d / 'scale.json'}"],
        r"train.num_steps must be <= 2147483647"),
    "data_at_scale_scratch_holds_other_files": (  # it would rewrite and remove them
        lambda d: ["benchmarks/data_at_scale.py", f"--scratch={d}", f"--out={d / 'scale.json'}"],
        r"--scratch=.* holds files this benchmark did not write .*: give a new or empty folder"),
    "data_at_scale_scratch_is_a_file": (
        lambda d: ["benchmarks/data_at_scale.py", f"--scratch={d / 'a_file'}",
                   f"--out={d / 'scale.json'}"],
        "--scratch=.*a_file: .*a_file is a file, not a folder"),
    "data_at_scale_scratch_unwritable": (
        lambda d: ["benchmarks/data_at_scale.py", "--scratch=/sys/gpt_jax_scale",
                   f"--out={d / 'scale.json'}"],
        "--scratch=/sys/gpt_jax_scale: cannot write in /sys/gpt_jax_scale"),
    "time_to_loss_nanogpt_that_prints_no_evaluation": (
        lambda d: ["benchmarks/time_to_loss.py", f"--nanogpt={d / 'nanogpt_silent'}",
                   f"--out={d / 'time_to_loss.json'}"],
        "train.py of --nanogpt=.*nanogpt_silent printed no evaluation line like 'step 250: "
        "train loss 1.9, val loss 1.9'"),
    "time_to_loss_nanogpt_that_fails": (
        lambda d: ["benchmarks/time_to_loss.py", f"--nanogpt={d / 'nanogpt_fails'}",
                   f"--out={d / 'time_to_loss.json'}"],
        r"train.py in .*nanogpt_fails failed \(exit status 3\): no output"),
    "time_to_loss_nanogpt_under_home": (  # ~ expanded for the child too, not only the check
        lambda d: ["benchmarks/time_to_loss.py", "--nanogpt=~/nanogpt_fails",
                   f"--nanogpt_python={os.path.basename(sys.executable)}",
                   f"--out={d / 'time_to_loss.json'}"],
        r"train.py in .*/nanogpt_fails failed \(exit status 3\): no output",
        lambda d: {"HOME": str(d), "PATH": f"{os.path.dirname(sys.executable)}:/usr/bin:/bin"}),
    "time_to_loss_nanogpt_without_meta": (  # nanoGPT would train on GPT-2's vocabulary
        lambda d: ["benchmarks/time_to_loss.py", f"--nanogpt={d / 'nanogpt_without_meta'}",
                   f"--out={d / 'time_to_loss.json'}"],
        "has no data/shakespeare_char/meta.pkl: run its data/shakespeare_char/prepare.py"),
    "time_to_loss_nan_target": (
        lambda d: ["benchmarks/time_to_loss.py", f"--nanogpt={d / 'nanogpt_silent'}",
                   "--target=nan"], "--target takes a validation loss, a positive number"),
    "time_to_loss_of_the_encoder_decoder": (
        lambda d: ["benchmarks/time_to_loss.py", f"--nanogpt={d / 'nanogpt_silent'}",
                   "--config=configs/seq2seq.py", f"--out={d / 'time_to_loss.json'}"],
        "--config=configs/seq2seq.py trains on source → target pairs"),
    "time_to_loss_on_other_text": (  # refused after nanoGPT's whole run, or timed unlike
        lambda d: ["benchmarks/time_to_loss.py", f"--nanogpt={d / 'nanogpt_silent'}",
                   "--set=data.path=mytext.txt", f"--out={d / 'time_to_loss.json'}"],
        "data.path='mytext.txt': nanoGPT's run, timed against ours, reads tiny Shakespeare"),
    "profile_step_config_named_from_the_repo": (  # it was looked for in configs/configs/
        lambda d: ["benchmarks/profile_step.py", "--config=configs/shakespeare_char_cpu.py",
                   f"--trace_dir={d / 'trace'}"],
        "--config=configs/shakespeare_char_cpu.py: name the file as under configs/, as in "
        "--config=shakespeare_char_cpu.py"),
    "profile_step_override_without_value": (
        lambda d: ["benchmarks/profile_step.py", "--override=train.batch_size",
                   f"--trace_dir={d / 'trace'}"],
        "--override='train.batch_size': expected FIELD=VALUE"),
    # workdir files: a FIFO or a device in place of a run's file is refused, never opened; a
    # vocabulary of the other kind of run, or a damaged one
    "resume_with_config_json_a_fifo": (
        lambda d: ["train.py", f"--config={TINY}", f"--workdir={d / 'fifo_config'}"],
        "fifo_config/config.json is a FIFO, not a regular file: move it away"),
    "sample_with_config_json_a_fifo": (
        sample(workdir="fifo_config"),
        "fifo_config/config.json is a FIFO, not a regular file"),
    "resume_with_vocab_json_dev_zero": (
        lambda d: ["train.py", f"--config={TINY}", f"--workdir={d / 'zero_vocab'}"],
        "zero_vocab/vocab.json is a device, not a regular file"),
    "sample_with_vocab_json_dev_zero": (
        sample(workdir="zero_vocab"),
        "zero_vocab/vocab.json is a device, not a regular file"),
    "inspect_with_vocab_json_a_fifo": (
        lambda d: ["-m", "gpt_jax.inspect", f"--workdir={d / 'fifo_vocab'}", "--prompt=ab",
                   f"--out={d / 'fifo_vocab_inspect'}"],
        "fifo_vocab/vocab.json is a FIFO, not a regular file"),
    "resume_with_metrics_jsonl_a_fifo": (
        lambda d: ["train.py", f"--config={TINY}", f"--workdir={d / 'fifo_metrics'}"],
        "fifo_metrics/metrics.jsonl is a FIFO, not a regular file"),
    "inspect_with_metrics_jsonl_a_fifo": (
        lambda d: ["-m", "gpt_jax.inspect", f"--workdir={d / 'fifo_metrics'}",
                   "--prompt=ab", f"--out={d / 'fifo_metrics_inspect'}"],
        "fifo_metrics/metrics.jsonl is a FIFO, not a regular file"),
    "train_lock_a_fifo": (
        lambda d: ["train.py", f"--config={TINY}", f"--workdir={d / 'fifo_lock'}"],
        "fifo_lock/train.lock is a FIFO, not a regular file"),
    "sample_best_with_its_score_a_fifo": (
        sample("--best", workdir="fifo_score"),
        "fifo_score/checkpoints/10/metrics/metrics is a FIFO, not a regular file"),
    "ladder_with_config_json_a_fifo": (
        lambda d: ["-m", "gpt_jax.ladder", f"--workdir={d / 'lad_config'}"],
        "lad_config/bigram/seed_1337/config.json is a FIFO, not a regular file"),
    "ladder_with_its_result_a_fifo": (
        lambda d: ["-m", "gpt_jax.ladder", f"--workdir={d / 'lad_result'}"],
        "lad_result/bigram/seed_1337/ladder_result.json is a FIFO, not a regular file"),
    "context_report_with_metrics_jsonl_a_fifo": (
        lambda d: ["-m", "gpt_jax.context_report", f"--workdir={d / 'ctx'}", "--steps=5"],
        "ctx/ngram_context1_5steps/metrics.jsonl is a FIFO, not a regular file"),
    "sample_text_run_with_a_pairs_vocabulary": (
        sample(workdir="pairs_vocab"),
        "pairs_vocab/vocab.json holds the vocabulary of source → target pairs, but "
        "config.json trains data.task=text: the two files are of different runs"),
    "inspect_pairs_run_with_a_text_vocabulary": (
        lambda d: ["-m", "gpt_jax.inspect", f"--workdir={d / 'pairs_config'}", "--prompt=ab"],
        r"pairs_config/vocab.json holds a text tokenizer \(char\), but config.json trains "
        "data.task=pairs"),
    "vocab_chars_holding_a_number": (
        sample(workdir="chars_numbers"),
        "chars_numbers/vocab.json is damaged: 'chars' must be sorted, unique, single "
        "characters: entry 1 is 1"),
    "vocab_chars_holding_null": (
        sample(workdir="chars_null"),
        "chars_null/vocab.json is damaged: .*: entry 1 is null"),
    "vocab_chars_holding_a_word": (
        sample(workdir="chars_words"),
        "chars_words/vocab.json is damaged: .*: entry 1 is \"bc\""),
    "vocab_chars_holding_a_duplicate": (
        lambda d: ["-m", "gpt_jax.inspect", f"--workdir={d / 'chars_twice'}", "--prompt=a"],
        "chars_twice/vocab.json is damaged: .*: 'a' is entry 0 and entry 1"),
    "vocab_chars_not_a_list": (
        sample(workdir="chars_not_a_list"),
        "chars_not_a_list/vocab.json is damaged: 'chars' must be a list .*, not a str"),
    "pairs_vocab_chars_holding_null": (
        sample(workdir="pairs_chars_null"),
        "pairs_chars_null/vocab.json is damaged: .*: entry 0 is null"),
    "pairs_vocab_chars_holding_a_word": (
        sample(workdir="pairs_chars_words"),
        "pairs_chars_words/vocab.json is damaged: .*: entry 0 is \"ab\""),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input(files, case):
    argv, message, *env = case
    run = files / "run"
    before = _snapshot(run)
    env = (env[0](files) if callable(env[0]) else env[0]) if env else None  # a dict, or of d
    result = run_python(argv(files), env=env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert re.search(message, lines[0]), lines[0]
    assert _snapshot(run) == before
    assert load_run(run).step == 10
    assert not (files / "new[1]").exists() and not (files / "new").exists()


def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(files, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(files / "run", run)
    result = run_python(train("--config.train.num_steps=20",
                              "--config.train.checkpoint_every=5")(tmp_path))
    assert result.returncode == 0, result.stderr
    for f in (run / "checkpoints" / "20").rglob("*"):
        if f.is_file() and f.parent.name == "d":
            f.write_bytes(b"garbage")
    sampled = run_python(sample("--max_new_tokens=5")(tmp_path))
    assert sampled.returncode == 0, sampled.stderr
    assert "the checkpoint at step 20 is damaged" in sampled.stderr
    assert "from step 15" in sampled.stderr
    resumed = run_python(train("--config.train.num_steps=20",
                               "--config.train.checkpoint_every=5")(tmp_path))
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from the checkpoint at step 15" in resumed.stdout
    assert (run / "checkpoints_damaged").is_dir()  # moved aside, never deleted
    assert load_run(run).step == 20


def test_all_checkpoints_damaged_names_the_steps(files, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(files / "run", run)
    for f in (run / "checkpoints").rglob("*"):
        if f.is_file() and f.parent.name == "d":
            f.write_bytes(b"garbage")
    result = run_python(sample()(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: no checkpoint in ") and "step(s) 10 damaged" in result.stderr


@pytest.mark.parametrize("command, flag", [
    (["train.py"], "--workdir"), (["-m", "gpt_jax.sample"], "--top_k"),
    (["-m", "gpt_jax.ladder"], "--full"), (["-m", "gpt_jax.context_report"], "--steps"),
    (["-m", "gpt_jax.prepare"], "--val_fraction"), (["-m", "gpt_jax.tasks.dates"], "--out"),
    (["-m", "gpt_jax.inspect"], "--blocks"), (["-m", "gpt_jax.attention_trick"], "three ways"),
], ids=lambda v: v[-1] if isinstance(v, list) else v)
def test_every_command_answers_help_with_its_usage_and_flags(command, flag):
    result = run_python([*command, "--help"], timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: ") and flag in result.stdout
    assert "on_device_budget_mb: " not in result.stdout  # the ladder's --config showed its defaults


def test_an_output_that_cannot_encode_a_character_gets_it_escaped():
    """Under an ASCII or latin-1 locale the ladder's help (its "7–12 s") and a run's summary
    ("steps 0 → N") ended in a UnicodeEncodeError's traceback."""
    result = run_python(["-m", "gpt_jax.ladder", "--help"], {"PYTHONIOENCODING": "ascii"},
                        timeout=60)
    assert result.returncode == 0, result.stderr
    assert "a GPU job, 7\\u201312 s a step" in " ".join(result.stdout.split())


def test_a_collective_that_lost_its_peer_is_one_line():
    """What jax raises in the survivor when another process of the run dies mid-collective."""
    code = ("import sys\nfrom gpt_jax import cli\nsys.argv = ['train.py']\n"
            "def main():\n    raise RuntimeError('UNKNOWN: Gloo all-reduce failed: [pair.cc:538] "
            "Read error [127.0.0.1]:34703: Connection reset by peer')\ncli.run(main)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: another process of this run failed or was stopped (a collective lost its peer); "
        "run the same command on every process to resume from the newest checkpoint"]


def test_a_failed_read_that_nobody_awaited_is_not_reported_but_other_asyncio_errors_are(caplog):
    """Orbax gives up on the other reads of a damaged checkpoint once one fails; asyncio then
    reports each such task when the garbage collector meets it, whenever that is, and the
    report would bury the run's one line."""
    import asyncio
    import gc

    from gpt_jax import cli

    async def read_damaged_bytes():
        raise ValueError("OUT_OF_RANGE: Error reading byte range")

    def abandon_a_failed_read():
        loop = asyncio.new_event_loop()
        task = loop.create_task(read_damaged_bytes())
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
        del task
        gc.collect()

    with cli.command_settings():
        abandon_a_failed_read()
        logging.getLogger("asyncio").error("Unclosed connection")
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == [
        "Unclosed connection"]
    abandon_a_failed_read()  # outside a command asyncio reports it as it always did
    assert caplog.records[-1].getMessage().startswith("Task exception was never retrieved")


def test_a_command_whose_standard_streams_are_closed_runs_on_dev_null(tmp_path):
    """Started with stdout and stderr closed (`>&- 2>&-`), training runs to its end: the
    closed streams are /dev/null, not the next files the run opens (its metrics hold nothing
    but records). With stdin closed, `--prompts=-` reads no prompt: one line, exit 2. The
    sampler with stdout closed or full says so."""
    run = tmp_path / "run"
    train = subprocess.run(["bash", "-c", f'exec "$0" train.py --config={TINY} --workdir={run} '
                            '--config.train.num_steps=4 >&- 2>&-', sys.executable], cwd=REPO)
    assert train.returncode == 0
    assert load_run(run).step == 4
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert lines and all(line.startswith("{") for line in lines)
    sample = subprocess.run(["bash", "-c", f'exec "$0" -m gpt_jax.sample --workdir={run} '
                             '--prompts=- <&-', sys.executable], cwd=REPO, capture_output=True,
                            text=True)
    assert sample.returncode == 2 and sample.stderr == "error: --prompts - holds no prompt\n"
    # the samples are the sampler's whole output: written nowhere, they are refused, and a
    # full disk under standard output is named as such (the OSError names no file)
    nowhere = subprocess.run(["bash", "-c", f'exec "$0" -m gpt_jax.sample --workdir={run} '
                              '>&-', sys.executable], cwd=REPO, capture_output=True, text=True)
    assert nowhere.returncode == 2 and nowhere.stderr.startswith(
        "error: standard output is closed: the samples would be written nowhere"), nowhere.stderr
    full = subprocess.run(["bash", "-c", f'exec "$0" -m gpt_jax.sample --workdir={run} '
                           '--max_new_tokens=20 >/dev/full', sys.executable], cwd=REPO,
                          capture_output=True, text=True)
    assert full.returncode == 2 and full.stderr == (
        "error: cannot write standard output: No space left on device\n"), full.stderr
    # every other command's prints too (inspect said "cannot write: No space left on device")
    full = subprocess.run(["bash", "-c", f'exec "$0" -m gpt_jax.inspect --workdir={run} '
                           f'--prompt=ROMEO --out={tmp_path / "pictures"} >/dev/full',
                           sys.executable], cwd=REPO, capture_output=True, text=True)
    assert full.returncode == 2 and full.stderr == (
        "error: cannot write standard output: No space left on device\n"), full.stderr


def test_a_workdir_holding_the_other_kind_of_vocabulary_is_refused_in_one_line(tmp_path):
    """A text run whose vocab.json is a pairs vocabulary, and a seq2seq run whose vocab.json
    is a text tokenizer's, are refused on resume instead of failing deep inside the data; so
    is a longer data.max_source_len for the seq2seq run (another table of source positions),
    before anything compiles, and a longer data.max_target_len is named, not only the
    model.block_size that seq2seq.py derives from it."""
    text, pairs = tmp_path / "text", tmp_path / "pairs"
    for workdir, args in ((text, [f"--config={TINY}"]),
                          (pairs, ["--config=configs/seq2seq.py", "--config.train.eval_iters=1",
                                   "--config.model.n_layer=1"])):
        done = run_python(["train.py", *args, f"--workdir={workdir}",
                           "--config.train.num_steps=1"])
        assert done.returncode == 0, done.stderr
    longer = run_python(["train.py", "--config=configs/seq2seq.py", f"--workdir={pairs}",
                         "--config.train.eval_iters=1", "--config.model.n_layer=1",
                         "--config.data.max_source_len=40", "--config.train.num_steps=2"])
    assert longer.returncode == 2 and longer.stderr.startswith(  # refused before compiling
        f"error: workdir {pairs} holds a checkpoint of a different model "
        f"(data.max_source_len: 32 → 40)"), longer.stderr
    longer = run_python(["train.py", "--config=configs/seq2seq.py", f"--workdir={pairs}",
                         "--config.train.eval_iters=1", "--config.model.n_layer=1",
                         "--config.data.max_target_len=12", "--config.train.num_steps=2"])
    assert longer.returncode == 2 and longer.stderr.startswith(  # the field the user set
        f"error: workdir {pairs} holds a checkpoint of a different model "
        f"(data.max_target_len: 10 → 12, which sets model.block_size: 11 → 13)"), longer.stderr
    text_vocab = (text / "vocab.json").read_bytes()
    (text / "vocab.json").write_bytes((pairs / "vocab.json").read_bytes())
    (pairs / "vocab.json").write_bytes(text_vocab)
    for workdir, args, said in (
            (text, [f"--config={TINY}"], "holds the vocabulary of source → target pairs"),
            (pairs, ["--config=configs/seq2seq.py", "--config.train.eval_iters=1",
                     "--config.model.n_layer=1"], "holds a text tokenizer (char)")):
        done = run_python(["train.py", *args, f"--workdir={workdir}",
                           "--config.train.num_steps=2"])
        assert done.returncode == 2 and said in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_command_run_from_a_deleted_folder_says_so_in_one_line(tmp_path):
    """A shell left in a folder that another command deleted: os.getcwd() fails, and every
    relative path with it (it was a traceback from pathlib, deep in the trainer)."""
    gone = tmp_path / "gone"
    result = subprocess.run(["bash", "-c", f'mkdir "{gone}" && cd "{gone}" && rmdir "{gone}" '
                             f'&& exec "$0" {REPO / "train.py"} --config={TINY} --workdir=run',
                             sys.executable], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr == (
        "error: the current folder no longer exists (it was deleted while the shell was in "
        "it): cd to a folder that exists and run the command again\n"), result.stderr


RUNS_OUT_OF_MEMORY = """
import sys
from gpt_jax import cli

def main():
    raise MemoryError if sys.argv[1] == "host" else RuntimeError("RESOURCE_EXHAUSTED: Out of "
                                                                 "memory allocating 10 GiB")

cli.run(main, out_of_memory=sys.argv[2] if len(sys.argv) > 2 else None)
"""


@pytest.mark.parametrize("where", ["host", "device"])
def test_out_of_memory_is_one_line_with_the_command_s_own_advice(where):
    """A training is told to shrink the model or the batch; the sampler and the translation
    benchmark name their own flags."""
    default = run_python(["-c", RUNS_OUT_OF_MEMORY, where])
    assert default.returncode == 2 and default.stderr == (
        "error: out of memory: use a smaller model, batch or block, more "
        "train.grad_accum_steps, or fewer samples\n"), default.stderr
    own = run_python(["-c", RUNS_OUT_OF_MEMORY, where, "out of memory: lower --batch"])
    assert own.returncode == 2 and own.stderr == "error: out of memory: lower --batch\n"


def test_a_flag_file_s_override_may_be_overridden_on_the_command_line(tmp_path):
    """absl's usual way: defaults in a flag file, the command line after it wins. The same
    field twice in one place is refused: one of the two would be dropped without a word."""
    from gpt_jax import cli

    defaults = tmp_path / "defaults.flags"
    defaults.write_text("--config.train.num_steps=10\n")
    cli.check_argv(["train.py", f"--flagfile={defaults}", "--config.train.num_steps=3"])
    twice = tmp_path / "twice.flags"
    twice.write_text("--config.train.num_steps=10\n--config.train.num_steps=11\n")
    with pytest.raises(cli.UserError, match=r"--config.train.num_steps is given more than "
                                            r"once \(in --flagfile=.*twice.flags\) \(10, 11\)"):
        cli.check_argv(["train.py", f"--flagfile={twice}"])
    with pytest.raises(cli.UserError, match=r"given more than once \(4, 6\)"):  # spaced values
        cli.check_argv(["train.py", "--config.train.num_steps", "4",
                        "--config.train.num_steps", "6"])


def test_resuming_another_kind_of_model_names_the_model_first(tmp_path):
    """A bigram's workdir resumed with a GPT config: the first differing field in name order
    was model.init, whose message spoke of initialization, of a model the run never was."""
    short = ["--config.train.num_steps=2", "--config.train.eval_iters=1"]
    done = run_python(["train.py", "--config=configs/bigram.py", f"--workdir={tmp_path}",
                       *short])
    assert done.returncode == 0, done.stderr
    refused = run_python(["train.py", "--config=configs/lecture.py:head",
                          f"--workdir={tmp_path}", *short])
    assert refused.returncode == 2 and refused.stderr == (
        f"error: workdir {tmp_path} holds a checkpoint of a different model (model.name: "
        f"'bigram' → 'gpt'); use a new --workdir or the original config\n"), refused.stderr


def test_bench_checks_every_config_before_it_times_any(tmp_path):
    """A --set that the second config refuses was found after the first was timed, and its
    figures were lost with the exit."""
    result = run_python(["benchmarks/bench.py", "--configs=shakespeare_char_cpu.py",
                         "--configs=shakespeare_char_cpu.py:short", "--set=train.weight_decay=300",
                         "--steps=1", f"--out={tmp_path / 'bench.json'}"])
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: train.weight_decay × train.learning_rate = 1.2")
    assert result.stdout == ""  # no matmul peak, no row: nothing was timed


def test_data_at_scale_without_gnu_time_is_one_line(tmp_path):
    """A missing /usr/bin/time was a FileNotFoundError's traceback, and one without GNU's -v
    report an AttributeError's, both after the corpus was written."""
    silent = tmp_path / "time"  # runs the command and reports nothing
    silent.write_text('#!/bin/sh\nshift\nexec "$@"\n')
    silent.chmod(0o755)
    script = ("import sys; sys.path.insert(0, 'benchmarks'); import data_at_scale\n"
              f"for data_at_scale.TIME in {(str(tmp_path / 'missing'), str(silent))!r}:\n"
              "    try:\n        data_at_scale.require_gnu_time()\n"
              "    except data_at_scale.UserError as e:\n        print(e)\n")
    result = run_python(["-c", script])
    assert result.returncode == 0, result.stderr
    install = "peak RSS is read from GNU time's -v report: install GNU time"
    missing, without_v = result.stdout.splitlines()
    assert missing.startswith(f"cannot run {tmp_path / 'missing'}: No such file or directory; "
                              f"{install}")
    assert without_v.startswith(f"{silent} -v reports no 'Maximum resident set size'; {install}")


def test_data_at_scale_rebuilds_a_slice_that_is_not_this_corpus_s(tmp_path):
    """The 200 MB slice for BPE was reused whatever it held: an empty file left by an
    interrupted write, or the slice of a corpus of another --gigabytes."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("to be\nor not\nto b")  # the slice ends after the last whole line
    sliced = tmp_path / "corpus_1mb.txt"
    script = ("import sys; sys.path.insert(0, 'benchmarks'); import data_at_scale\n"
              "from pathlib import Path\n"
              f"data_at_scale._slice(Path({str(corpus)!r}), Path({str(tmp_path)!r}), 1)\n")
    for before in ("", "to be\n", "to be\nor nod\n"):
        sliced.write_text(before)
        result = run_python(["-c", script])
        assert result.returncode == 0, result.stderr
        assert sliced.read_text() == "to be\nor not\n"
    kept = sliced.stat().st_ino
    assert run_python(["-c", script]).returncode == 0
    assert sliced.stat().st_ino == kept  # the right slice is reused, not written again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.txt", "corpus_1mb.txt"]


@pytest.mark.parametrize("under_time", [False, True], ids=["directly", "under_usr_bin_time"])
def test_a_benchmark_stopped_by_sigterm_ends_the_command_it_was_timing(tmp_path, under_time):
    """A terminated benchmark left its child (nanoGPT's or our train.py, alone or under
    /usr/bin/time) computing as an orphan, which ended only at its next line of output."""
    pid_file = tmp_path / "child.pid"
    sleeper = (f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
               "time.sleep(120)")
    command = (["/usr/bin/time", "-v"] if under_time else []) + [sys.executable, "-c", sleeper]
    script = ("import sys; sys.path.insert(0, 'benchmarks'); import children\n"
              "from gpt_jax import cli\n"
              f"cli.run(lambda: children.run({command!r}))\n")
    if under_time and not os.access("/usr/bin/time", os.X_OK):
        pytest.skip("no /usr/bin/time")
    benchmark = subprocess.Popen([sys.executable, "-c", script], cwd=REPO,
                                 stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(pid_file.read_text())
    benchmark.send_signal(signal.SIGTERM)
    assert benchmark.wait(timeout=30) == 143
    assert benchmark.stderr.read() == "terminated\n"
    for _ in range(100):  # the kill is sent before the benchmark exits; reaping may lag
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail(f"the timed command {child} outlived the benchmark")


def test_profile_step_finds_the_ops_of_a_program_too_small_for_the_worker_threads(tmp_path):
    """The bigram's ops run on the calling thread, not XLA:CPU's workers: the profile read
    '0.0 ms' and listed the thread pool's markers as its largest ops. An earlier trace whose
    folder's name sorts later (another time zone) was read instead of this run's."""
    import gzip

    earlier = tmp_path / "plugins" / "profile" / "2099_12_31_23_59_59" / "host.trace.json.gz"
    earlier.parent.mkdir(parents=True)
    with gzip.open(earlier, "wt") as f:
        json.dump({"traceEvents": [
            {"ph": "M", "name": "thread_name", "pid": 1, "tid": 1, "args": {"name": "Eigen"}},
            {"ph": "X", "name": "someone_elses_op.1", "pid": 1, "tid": 1, "ts": 0,
             "dur": 10**6}]}, f)
    result = run_python(["benchmarks/profile_step.py", "--config=bigram.py", "--calls=1",
                         f"--trace_dir={tmp_path}", "--top=30"])
    assert result.returncode == 0, result.stderr
    total = re.search(r"op time per step, summed over threads: ([\d.]+) ms", result.stdout)
    assert float(total[1]) > 0, result.stdout
    assert "Threadpool" not in result.stdout and "fusion" in result.stdout
    assert "someone_elses_op" not in result.stdout and "Wait" not in result.stdout
