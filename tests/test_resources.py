"""Resource failures and damaged workdirs: files that cannot be written, a full disk, files that
parse but hold nonsense. Each ends within seconds with one line on stderr and a non-zero exit,
and every checkpoint that existed before still restores.

Making a file unwritable for root takes `chattr +i` and a full disk takes a small tmpfs; where
the machine does not allow them (not root, no chattr), those cases are skipped.
"""

import contextlib
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import REPO, exec_with, run_python
from gpt_jax.restore import load_run

TINY = (REPO / "tests" / "tiny_config.py").as_posix()
TIME_LIMIT_S = 60  # a failing run must end well within this (it used to hang forever)


def _train(workdir, *args, timeout=TIME_LIMIT_S):
    return run_python(["train.py", f"--config={TINY}", f"--workdir={workdir}",
                       "--config.sample.max_new_tokens=10", *args], timeout=timeout)


def _one_line_error(result, pattern: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert pattern in lines[0], lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run of 10 steps with its checkpoint, to copy for each case."""
    workdir = tmp_path_factory.mktemp("trained") / "run"
    result = _train(workdir, "--config.train.num_steps=10")
    assert result.returncode == 0, result.stderr
    return workdir


@pytest.fixture
def run(trained, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(trained, workdir)
    return workdir


def _chattr(path, flag: str) -> bool:
    return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0


@contextlib.contextmanager
def immutable(path):
    """`path` cannot be written, renamed or (for a folder) added to, even by root."""
    if os.geteuid() != 0 or shutil.which("chattr") is None or not _chattr(path, "+i"):
        pytest.skip("needs root and chattr to make a file unwritable")
    try:
        yield
    finally:
        _chattr(path, "-i")


@pytest.mark.parametrize("name, message", [
    ("checkpoints", "cannot save the checkpoint of step 20 in "),
    ("metrics.jsonl", "cannot write "),
    ("config.json", "cannot write "),
    ("vocab.json", "cannot write "),
    ("samples", "cannot write "),
    ("tensorboard", "cannot write "),
])
def test_a_file_that_cannot_be_written_ends_the_run_with_one_line(run, name, message):
    """A save that fails also names the checkpoint that is kept and leaves nothing half-written."""
    with immutable(run / name):
        start = time.perf_counter()
        result = _train(run, "--config.train.num_steps=30")
        elapsed = time.perf_counter() - start
    _one_line_error(result, message)
    assert name in result.stderr and elapsed < TIME_LIMIT_S
    if name == "checkpoints":
        assert result.stderr.strip().endswith(
            "Operation not permitted; the checkpoint of step 10 is kept"), result.stderr
        assert not list((run / "checkpoints").glob("*tmp*"))
    assert load_run(run, step=10).step == 10  # the earlier checkpoint is intact and restores
    assert load_run(run).step in (10, 20)  # step 20 is saved before its evaluation is written


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB filesystem of its own."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True)
    if made.returncode != 0:
        pytest.skip("needs permission to mount a tmpfs")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_ends_the_run_with_one_line_and_keeps_the_last_checkpoint(small_disk,
                                                                             trained):
    run = small_disk / "run"
    shutil.copytree(trained, run)
    with open(small_disk / "filler", "wb", buffering=0) as filler:  # every byte left, taken
        with contextlib.suppress(OSError):
            while True:
                filler.write(b"\0" * 4096)
    result = _train(run, "--config.train.num_steps=30")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0], result.stderr
    (small_disk / "filler").unlink()
    assert load_run(run).step == 10


def test_prepare_onto_a_full_disk_names_its_output_and_keeps_the_dataset_there(small_disk):
    """The write's OSError names no file: the one line names --out."""
    from gpt_jax.dataset import default_corpus_path

    out = small_disk / "data"
    made = run_python(["-m", "gpt_jax.prepare", f"--input={default_corpus_path()}",
                       f"--out={out}", "--val_fraction=0.5"])
    assert made.returncode == 0, made.stderr
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    big = small_disk / "big.txt"  # the rest of the disk is not room for its tokens too
    with open(big, "wb", buffering=0) as f:
        free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
        f.write(b"abc\n" * (int(free * 0.6) // 4))
    _one_line_error(run_python(["-m", "gpt_jax.prepare", f"--input={big}", f"--out={out}"]),
                    f"cannot write the dataset in --out={out}: No space left on device (the "
                    f"dataset there before, if any, is unchanged)")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_a_disk_too_small_for_the_first_checkpoint(small_disk):
    result = _train(small_disk / "run", "--config.train.num_steps=20", "--config.model.n_embd=128",
                    "--config.model.n_head=4")
    _one_line_error(result, "No space left on device")


def test_config_json_of_the_wrong_types_is_refused_by_trainer_and_sampler(run):
    config = json.loads((run / "config.json").read_text())
    config["model"]["n_layer"] = "two"
    (run / "config.json").write_text(json.dumps(config))
    for result in (_train(run, "--config.train.num_steps=20"),
                   run_python(["-m", "gpt_jax.sample", f"--workdir={run}"])):
        _one_line_error(result, "config.json: model.n_layer must be of type int, got 'two'")


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"model": 3}',
                                     '{"model": {"n_layers": 2}}'])
def test_a_damaged_config_json_is_one_line(run, content):
    (run / "config.json").write_text(content)
    result = run_python(["-m", "gpt_jax.sample", f"--workdir={run}"])
    _one_line_error(result, "config.json")


BAD_METRICS_LINES = {
    "step_str": '{"step": "x"}', "list": "[1, 2]", "no_step": '{"loss": 1.0}',
    "garbage": "garbage",  # valid JSON or not, no record
    "loss_dict": '{"step": 5, "val_loss": {"a": 1}}',  # wrong types
    "loss_list": '{"step": 5, "train_loss": [1, 2]}',
    "deep": "[" * 100000,  # nested too deeply to parse
}


@pytest.mark.parametrize("line", BAD_METRICS_LINES.values(), ids=BAD_METRICS_LINES.keys())
def test_a_wrong_last_line_of_metrics_is_skipped_with_a_warning(tmp_path, capsys, line):
    """What a resumed run does with metrics.jsonl first: drop what is past its checkpoint."""
    from gpt_jax.metrics import MetricsWriter

    records = '{"step": 0, "val_loss": 4.2}\n{"step": 10, "val_loss": 3.1}\n'
    (tmp_path / "metrics.jsonl").write_text(records + line + "\n")
    writer = MetricsWriter(tmp_path)
    writer.truncate_after(10)
    writer.close()
    assert "metrics.jsonl line 3 is not a metrics record; skipped" in capsys.readouterr().err
    assert (tmp_path / "metrics.jsonl").read_text() == records


def test_a_last_line_of_metrics_that_is_not_utf8_is_skipped_with_a_warning(tmp_path, capsys):
    """Bytes that are not UTF-8 (a disk error, a binary pasted in) spoil their line only."""
    from gpt_jax.metrics import MetricsWriter

    records = b'{"step": 0, "val_loss": 4.2}\n{"step": 10, "val_loss": 3.1}\n'
    (tmp_path / "metrics.jsonl").write_bytes(records + b"\xff\xfe\n")
    writer = MetricsWriter(tmp_path)
    writer.truncate_after(10)
    writer.close()
    assert "metrics.jsonl line 3 is not a metrics record; skipped" in capsys.readouterr().err
    assert (tmp_path / "metrics.jsonl").read_bytes() == records


def test_a_resumed_run_skips_a_wrong_last_line_of_metrics(run):
    """The same through the command line (the table above runs the reader alone)."""
    with (run / "metrics.jsonl").open("a") as f:
        f.write(BAD_METRICS_LINES["deep"] + "\n")
    result = _train(run, "--config.train.num_steps=20")
    assert result.returncode == 0, result.stderr
    assert "is not a metrics record; skipped" in result.stderr
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 10, 20]


def test_a_damaged_vocabulary_is_one_line(run):
    (run / "vocab.json").write_text('{"chars": ["b", "a"]}')
    _one_line_error(run_python(["-m", "gpt_jax.sample", f"--workdir={run}"]),
                    "sorted, unique, single characters")


@pytest.mark.parametrize("field, value, message", [
    ("n_head", 0, "model.n_head must be >= 1"),
    ("block_size", 10**6, "does not match the model"),  # a positions table of another size
    ("name", "transformer", "model.name must be one of"),
    ("dropout", 2.0, "model.dropout must be in [0, 1)"),
])
def test_a_config_json_of_impossible_settings_is_one_line(run, field, value, message):
    """Types right, values impossible: the sampler checks them as the trainer does."""
    config = json.loads((run / "config.json").read_text())
    config["model"][field] = value
    (run / "config.json").write_text(json.dumps(config))
    _one_line_error(run_python(["-m", "gpt_jax.sample", f"--workdir={run}"]), message)


def test_a_config_json_lacking_a_field_that_mattered_says_so(run):
    """A field config.json lacks takes its default (a run saved before the field existed);
    when the checkpoint then does not fit, the error names the fields taken."""
    config = json.loads((run / "config.json").read_text())
    del config["model"]["n_embd"]  # tiny_config's 16, read back as the default 32
    (run / "config.json").write_text(json.dumps(config))
    _one_line_error(run_python(["-m", "gpt_jax.sample", f"--workdir={run}"]),
                    f"{run / 'config.json'} lacks model.n_embd = 32 (the default taken): was it "
                    f"edited, or saved before these fields existed?")


@pytest.mark.parametrize("name", ["config.json", "vocab.json"])
def test_json_nested_too_deeply_is_one_line(run, name):
    (run / name).write_text("[" * 100000 + "]" * 100000)
    _one_line_error(run_python(["-m", "gpt_jax.sample", f"--workdir={run}"]), "")


def test_a_checkpoint_without_its_metadata_is_damaged_and_the_one_before_is_used(run):
    assert _train(run, "--config.train.num_steps=20").returncode == 0
    (run / "checkpoints" / "20" / "default" / "_METADATA").unlink()  # the tree's description
    sampled = run_python(["-m", "gpt_jax.sample", f"--workdir={run}", "--max_new_tokens=5"])
    assert sampled.returncode == 0, sampled.stderr
    assert "the checkpoint at step 20 is damaged" in sampled.stderr
    assert "from step 10" in sampled.stderr


def test_a_pipe_in_a_checkpoint_is_damage_not_a_hang(run):
    folder = next(p for p in (run / "checkpoints" / "10").rglob("*") if p.is_dir())
    os.mkfifo(folder / "a_pipe")
    start = time.perf_counter()
    result = run_python(["-m", "gpt_jax.sample", f"--workdir={run}"], timeout=TIME_LIMIT_S)
    assert time.perf_counter() - start < TIME_LIMIT_S
    _one_line_error(result, "step(s) 10 damaged")


@pytest.mark.parametrize("how", ["deleted", "emptied"])
def test_a_run_whose_checkpoints_are_gone_starts_over_and_keeps_its_metrics(run, how):
    """Trained again, a workdir whose checkpoints were deleted (or never saved before a crash)
    starts from step 0, and says so; the metrics of the earlier run are kept aside, not
    overwritten by the new run's."""
    shutil.rmtree(run / "checkpoints")
    if how == "emptied":
        (run / "checkpoints").mkdir()
    result = _train(run, "--config.train.num_steps=10")
    assert result.returncode == 0, result.stderr
    assert "holds no checkpoint to resume; training starts again from step 0" in result.stderr
    kept = (run / "metrics.jsonl.before_restart").read_text().splitlines()
    assert [json.loads(line)["step"] for line in kept] == [0, 10]
    assert load_run(run).step == 10


def test_a_full_disk_when_the_lock_is_written_names_the_lock(small_disk):
    (small_disk / "run").mkdir()  # a folder takes no block of the disk: the lock's pid does
    with open(small_disk / "filler", "wb", buffering=0) as filler:
        with contextlib.suppress(OSError):
            while True:
                filler.write(b"\0" * 4096)
    result = _train(small_disk / "run", "--config.train.num_steps=10")
    _one_line_error(result, f"cannot write {small_disk / 'run' / 'train.lock'}: No space left")
    assert not (small_disk / "run" / "train.lock").exists()


def test_an_atomic_write_keeps_the_old_file_on_failure_and_never_writes_into_another(
        tmp_path, monkeypatch):
    """Every result file (config, metrics, pictures, benchmark JSON) is written through
    write_atomic: a full disk keeps the earlier file whole (a benchmark's JSON used to be cut
    at 4,096 bytes) and leaves no temporary file; the temporary name is the write's own, so a
    FIFO or another program's half-written file at a fixed name is never opened (inspect hung
    on one; two benchmarks with one --out wrote into one temporary); a result kept as a link
    stays a link; a folder in the file's place is named."""
    import errno
    import io

    import gpt_jax.run_files as run_files
    from gpt_jax.errors import UserError

    path = tmp_path / "result.json"
    run_files.write_atomic(path, "old")
    os.mkfifo(tmp_path / "result.json.tmp")  # where the temporary file used to be
    run_files.write_atomic(path, b"new")
    assert path.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json", "result.json.tmp"]

    # Another program's write, open at the moment this one writes: neither reaches the other.
    names = []
    opened = run_files.os.open

    def open_and_interleave(name, flags, mode=0o777):
        names.append(name)
        if len(names) == 1:  # the first write is cut short by a second one, whole
            run_files.write_atomic(path, "second")
        return opened(name, flags, mode)

    monkeypatch.setattr(run_files.os, "open", open_and_interleave)
    run_files.write_atomic(path, "first")
    monkeypatch.undo()
    assert len(set(names)) == 2 and path.read_text() == "first"

    class FullDisk(io.BytesIO):  # the disk fills up half-way through the write
        def write(self, data):
            super().write(data[:2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    fdopen = run_files.os.fdopen
    monkeypatch.setattr(run_files.os, "fdopen", lambda fd, mode: (fdopen(fd, mode).close(),
                                                                  FullDisk())[1])
    with pytest.raises(UserError, match=r"cannot write .*result.json: No space left on device"):
        run_files.write_atomic(path, "newer")
    assert path.read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json", "result.json.tmp"]
    monkeypatch.undo()

    def immutable(src, dst):  # chattr +i on the file itself: its rename fails, naming both
        raise OSError(errno.EPERM, os.strerror(errno.EPERM), src, None, dst)

    monkeypatch.setattr(run_files.os, "replace", immutable)
    with pytest.raises(UserError, match=r"cannot write .*result.json: Operation not permitted"):
        run_files.write_atomic(path, "newer")
    monkeypatch.undo()

    (tmp_path / "kept").mkdir()  # a result linked into another folder (a report under docs/)
    (tmp_path / "report.md").symlink_to(tmp_path / "kept" / "report.md")
    run_files.write_atomic(tmp_path / "report.md", "table")
    assert (tmp_path / "report.md").is_symlink()
    assert (tmp_path / "kept" / "report.md").read_text() == "table"
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["report.md"]

    (tmp_path / "folder.png").mkdir()
    with pytest.raises(UserError, match=r"cannot write .*folder.png: a folder is in its place"):
        run_files.write_atomic(tmp_path / "folder.png", b"png")


def test_a_folder_named_checkpoints_that_is_no_run_s_may_hold_a_workdir(tmp_path):
    """The refusal of a workdir inside another run's checkpoints looks for a run there (its
    config.json and vocab.json), not only a config.json, common at a project's root."""
    import gpt_jax.run_files as run_files
    from gpt_jax.errors import UserError

    project = tmp_path / "project"
    (project / "checkpoints").mkdir(parents=True)
    (project / "config.json").write_text("{}")
    assert run_files.prepare(project / "checkpoints" / "run1").is_dir()
    (project / "vocab.json").write_text("{}")
    with pytest.raises(UserError, match="is inside the checkpoints of the run in .*project"):
        run_files.prepare(project / "checkpoints" / "run2")


def _under_address_space_limit(args, gib: float):
    """`python ARGS` in a fresh interpreter under `ulimit -v` of `gib` GiB."""
    import sys

    limit = int(gib * 2**30)
    return subprocess.run([*exec_with(f"AS={limit}"), sys.executable, *args], cwd=REPO,
                          capture_output=True, text=True, timeout=TIME_LIMIT_S)


@pytest.mark.parametrize("command", [["train.py", f"--config={TINY}"],
                                     ["-m", "gpt_jax.sample"]])
def test_an_address_space_limit_below_what_jax_reserves_is_one_line(tmp_path, command):
    """`ulimit -v 1600000`: jax and XLA reserve ~2 GB of address space before any work, and
    a run ended in a thread that could not start (a traceback), an abort in C++ or a segfault,
    depending on where the next reservation fell."""
    result = _under_address_space_limit([*command, f"--workdir={tmp_path / 'run'}"], 1.5)
    _one_line_error(result, "the address space that ulimit -v allows is 1.50 GiB, below the "
                            "~2 GiB that jax and XLA reserve before any work")
    assert not (tmp_path / "run").exists()


def test_a_config_beyond_what_an_address_space_limit_leaves_is_refused_up_front(tmp_path):
    """The memory check counts what ulimit -v leaves unreserved: a batch that fits the
    machine's RAM but not the limit was trained until XLA's allocation failed."""
    result = _under_address_space_limit(
        ["train.py", f"--config={TINY}", f"--workdir={tmp_path}", "--config.train.num_steps=2",
         "--config.model.block_size=64", "--config.model.n_embd=32",
         "--config.train.batch_size=4000"], 3.0)  # ~1.8 GiB: any machine's RAM holds it
    _one_line_error(result, "the address space that ulimit -v allows leaves ")
    assert "lower train.batch_size" in result.stderr


def test_a_thread_that_cannot_start_is_one_line():
    """Python's own error when no stack can be reserved for a thread (at orbax's or the
    compiler's threads, under a tight address-space limit)."""
    result = run_python(["-c", "from gpt_jax import cli\n"
                               "def main():\n"
                               "    raise RuntimeError(\"can't start new thread\")\n"
                               "cli.run(main)\n"])
    _one_line_error(result, "error: cannot start a thread: out of memory")


@pytest.mark.parametrize("raised, said", [
    # XLA:CPU's YNNPACK kernels report a failed allocation in C++ only (a traceback, exit 1)
    ('RuntimeError("INTERNAL: YNNPACK operation failed: error")',
     "error: out of memory: use a smaller model, batch or block, more train.grad_accum_steps, "
     "or fewer samples (XLA:CPU's YNNPACK kernel failed, as it does when it cannot allocate)"),
    # under `ulimit -n 7` XLA found no file descriptor for /dev/urandom (a traceback, exit 1)
    ('RuntimeError("random_device::random_device(const std::string&): device not available")',
     "error: XLA cannot open /dev/urandom (random_device::random_device(const std::string&): "
     "device not available): too many open files for `ulimit -n`? raise it"),
    # a library's file that could not be opened to read was named as one not written
    ('OSError(24, "Too many open files", "/usr/lib/python3/readers.py")',
     "error: cannot open /usr/lib/python3/readers.py: Too many open files (the limit of "
     "`ulimit -n`: raise it)"),
])
def test_a_resource_failure_deep_in_a_library_is_one_line(raised, said):
    result = run_python(["-c", "from gpt_jax import cli\n"
                               "def main():\n"
                               f"    raise {raised}\n"
                               "cli.run(main)\n"])
    _one_line_error(result, said)


@pytest.mark.parametrize("limit", [7, 9])
def test_a_low_limit_of_open_files_is_one_line(tmp_path, limit):
    """`ulimit -n 7` ended in a traceback from the compiling thread (exit 1)."""
    import sys

    result = subprocess.run(
        [*exec_with(f"NOFILE={limit}"), sys.executable, "train.py", f"--config={TINY}",
         f"--workdir={tmp_path / 'run'}"],
        cwd=REPO, capture_output=True, text=True, timeout=TIME_LIMIT_S)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


@pytest.mark.parametrize("budget_mb, steps, measured_gb", [
    (1024, 5_000_000, 1.48),  # offsets on the device
    (0, 1_000_000, 2.49),     # windows of block_size + 1 tokens read on the host
])
def test_the_memory_check_counts_a_call_s_inputs_padded_to_steps_per_call(
        budget_mb, steps, measured_gb):
    """Each call sends its inputs padded to train.steps_per_call steps. With the tiny config
    (8 rows of 8 tokens) the peak RSS grew by the measured figures over the default; the check
    counted 4 bytes of offset per row and step (0.15 GiB), and no window at all, so a
    steps_per_call beyond the memory ran until the kernel's OOM killer ended it."""
    from gpt_jax.config import load_config_file
    from gpt_jax.layout import BatchLayout
    from gpt_jax.text_task import TextTask

    config = load_config_file(TINY)
    config.train.update(dict(num_steps=10 * steps, steps_per_call=steps))
    config.data.on_device_budget_mb = budget_mb
    task = TextTask.load(config)
    parts = task.memory_parts(BatchLayout.current(config.train.batch_size, 1))
    name = next(name for name in parts if f"of {steps} steps per call" in name)
    assert parts[name][0] > measured_gb * 1e9 and parts[name][1] == "lower train.steps_per_call"


def test_an_encoder_decoder_s_memory_is_counted_over_its_targets_not_its_table():
    """Its block beyond the target and end token is never read: counted over 5,000 positions,
    a run that fit was refused ("needs about 99.4 GiB")."""
    from gpt_jax import memory
    from gpt_jax.config import load_config_file

    config = load_config_file(str(REPO / "configs" / "seq2seq.py"))
    wide = load_config_file(str(REPO / "configs" / "seq2seq.py"))
    wide.model.block_size = 5000
    activations = [next(v for k, v in memory.training_bytes(c, 20, 64, 64, 0).items()
                        if k.startswith("activations")) for c in (config, wide)]
    assert activations[0] == activations[1]
