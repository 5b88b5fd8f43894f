"""Faults lose nothing: SIGKILL anywhere, Ctrl-C, NaN, two trainers on one workdir.

Every test here runs the real CLI in a subprocess and kills it for real.
"""

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
from gpt_jax import stop
from gpt_jax.kill_points import ENV, SIGNAL_ENV
from gpt_jax.metrics import read_metrics
from gpt_jax.restore import load_run

TINY = (REPO / "tests" / "tiny_config.py").as_posix()
ARGS = ["--config.train.num_steps=40", "--config.train.checkpoint_every=10",
        "--config.train.eval_interval=20", "--config.model.dropout=0.1"]


def _train(workdir, *extra, kill_at=None, args=ARGS):
    env = {ENV: kill_at} if kill_at else {}
    return run_python(["train.py", f"--config={TINY}", f"--workdir={workdir}", *args, *extra],
                      env=env)


def _start(workdir, *extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-u", "train.py", f"--config={TINY}",
                             f"--workdir={workdir}", *extra], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_line(proc: subprocess.Popen, text: str) -> None:
    for line in proc.stdout:
        if text in line:
            return
    raise AssertionError(f"{text!r} never printed; stderr: {proc.stderr.read()}")


def _assert_identical(run_a, run_b):
    import jax
    leaves_a = jax.tree_util.tree_flatten_with_path(run_a.state)[0]
    leaves_b = jax.tree_util.tree_flatten_with_path(run_b.state)[0]
    assert len(leaves_a) == len(leaves_b)
    for (path, a), (_, b) in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=jax.tree_util.keystr(path))


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """40 steps without interruption: the reference every resumed run must equal, bit for bit."""
    workdir = tmp_path_factory.mktemp("straight")
    result = _train(workdir)
    assert result.returncode == 0, result.stderr
    return load_run(workdir)


# Killed after step 25, the save of step 20 may still have been in flight: then the run
# resumes from 10. When the save of 30 has started, that of 20 has finished (orbax finishes
# one save before starting the next), and 30 itself is lost.
@pytest.mark.parametrize("kill_at, resumed_from", [("step:25", (10, 20)), ("save:30", (20,))],
                         ids=["between_saves", "during_async_save"])
def test_sigkill_then_resume_is_bit_exact(tmp_path, straight, kill_at, resumed_from):
    killed = _train(tmp_path, kill_at=kill_at)
    assert killed.returncode == -signal.SIGKILL  # a real SIGKILL, not an exception
    resumed = _train(tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert any(f"resumed from the checkpoint at step {s}\n" in resumed.stdout
               for s in resumed_from), resumed.stdout
    run = load_run(tmp_path)
    assert run.step == 40
    _assert_identical(run, straight)


def test_killed_again_and_again_still_ends_where_a_straight_run_does(tmp_path, straight):
    """Kills before the first checkpoint and between saves (a kill during a save: the test
    above), one from outside at a random moment, then one run to the end."""
    for kill_at, saved in (("step:5", ()), ("step:38", (20, 30))):
        killed = _train(tmp_path, kill_at=kill_at)
        assert killed.returncode == -signal.SIGKILL, (kill_at, killed.stderr)
        if saved:  # the save of 30 may still be in flight at step 38: then 20 is the last
            assert load_run(tmp_path).step in saved
    rng = np.random.default_rng(0)  # and one kill from outside at a random moment
    proc = _start(tmp_path, *ARGS)
    _wait_for_line(proc, "step(s) took")
    time.sleep(rng.uniform(0.0, 0.3))
    proc.kill()
    proc.wait()
    finished = _train(tmp_path)
    assert finished.returncode == 0, finished.stderr
    assert "resumed from the checkpoint at step " in finished.stdout, finished.stdout
    _assert_identical(load_run(tmp_path), straight)


@pytest.mark.parametrize("signum, word, code", [
    (signal.SIGINT, "interrupted", 130), (signal.SIGTERM, "terminated", 143),
    (signal.SIGHUP, "hung up", 129), (signal.SIGUSR1, "stopped by SIGUSR1", 138),
    (signal.SIGXCPU, "out of CPU time (SIGXCPU)", 152)])
def test_a_signal_saves_the_current_step_and_resumes_exactly(tmp_path, straight, signum, word,
                                                              code):
    """Ctrl-C, the SIGTERM a scheduler sends, the SIGHUP of a terminal or ssh session that
    closed, a scheduler's warning SIGUSR1 (SLURM's --signal) or the kernel's SIGXCPU at a soft
    CPU-time limit: save at the next step boundary, then exit. (SIGUSR1 and SIGXCPU ended the
    run where it stood, without a word, the steps since the last checkpoint lost.)"""
    proc = _start(tmp_path, *ARGS)
    _wait_for_line(proc, "step(s) took")
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    # (a loaded machine can deliver it past the last step, 40: said as such)
    said = re.match(rf"{re.escape(word)} (at step (\d+)|after the last step, 40): ",
                    err.strip().splitlines()[-1])
    assert said and "Traceback" not in err, err
    stopped_at = int(said[2] or 40)
    assert load_run(tmp_path).step == stopped_at
    resumed = _train(tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    if stopped_at < 40:
        assert f"resumed from the checkpoint at step {stopped_at}\n" in resumed.stdout
    _assert_identical(load_run(tmp_path), straight)


def test_the_kernel_s_repeats_of_sigxcpu_never_abort_the_save_the_first_asked_for():
    """Past a soft CPU-time limit the kernel sends SIGXCPU every second: the second one, as a
    second Ctrl-C does, would abort the save that the first asked for. Only another signal
    aborts."""
    from gpt_jax import cli, stop
    from gpt_jax.errors import Terminated
    from gpt_jax.stop import StopRequest

    stop._repeats_seen.clear()  # this process met no SIGXCPU before
    said = []
    request = StopRequest(notify=said.append)
    for _ in range(3):
        request._handle(signal.SIGXCPU, None)
    assert request.requested and request.signum == signal.SIGXCPU
    assert said == ["SIGXCPU: saving a checkpoint at the next step boundary, then stopping "
                    "(another signal aborts)"]
    with pytest.raises(Terminated):
        request._handle(signal.SIGTERM, None)
    cli._raise(signal.SIGXCPU, None)  # after the stop, the command's own handler: no abort
    again = StopRequest(notify=said.append)
    again._handle(signal.SIGUSR1, None)
    time.sleep(0.15)  # more than a duplicate's 0.1 s: a second request
    with pytest.raises(Terminated):
        again._handle(signal.SIGUSR1, None)


def test_a_reader_that_leaves_the_pipe_stops_training_with_a_checkpoint(tmp_path):
    """`train.py ... | head`: once head has read its lines, nobody follows the run; it saves
    the step reached and stops as a process that SIGPIPE ended (141), and resumes from it."""
    proc = _start(tmp_path, "--config.train.num_steps=1000000", "--config.train.log_interval=1")
    _wait_for_line(proc, "step(s) took")
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("output closed at step "), err
    stopped_at = int(lines[0].split("output closed at step ")[1].split(":")[0])
    assert load_run(tmp_path).step == stopped_at
    resumed = _train(tmp_path, args=[f"--config.train.num_steps={stopped_at + 2}"])
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from the checkpoint at step {stopped_at}\n" in resumed.stdout


A_TERMINAL_THAT_CLOSES = """
import errno, io, sys
from gpt_jax.progress import Progress

class Closed(io.TextIOWrapper):  # a terminal gone: every write fails with EIO
    def write(self, text):
        raise OSError(errno.EIO, "Input/output error")

sys.stdout = Closed(io.BytesIO())
sys.stdout.fileno = lambda: 1
progress = Progress(0, 100, 10, bar=True)
progress.update(1, 4.0, {"lr": 1e-3}, 1000.0)
progress.unpause()  # the trainer's, after the first step: the bar opens
progress.update(2, 4.0, {"lr": 1e-3}, 1000.0)
print(progress.output_closed, file=sys.stderr)
"""


def test_a_progress_bar_whose_terminal_closed_asks_to_stop():
    """tqdm swallows the EIO of its own writes and only stops drawing: the bar's silence is
    the sign, not an exception, and the trainer must see it as a reader that left."""
    result = run_python(["-c", A_TERMINAL_THAT_CLOSES])
    assert result.returncode == 0 and result.stderr.strip() == "True", result.stderr


def test_under_nohup_a_sighup_does_not_stop_training(tmp_path):
    """`nohup train.py ...` means: outlive the terminal. Its SIGHUP stays ignored; a SIGTERM
    still saves and stops."""
    proc = subprocess.Popen([*exec_with("ignore=HUP"), sys.executable, "-u", "train.py",
                             f"--config={TINY}", f"--workdir={tmp_path}",
                             "--config.train.num_steps=1000000"],
                            cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for_line(proc, "step(s) took")
    proc.send_signal(signal.SIGHUP)
    time.sleep(2 * stop.GRACE_SECONDS + 1)
    assert proc.poll() is None, proc.stderr.read()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1].startswith("terminated at step "), err


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    """The loss of step N is computed from the parameters saved at step N - 1: that checkpoint
    fails again at step N when resumed, so it is set aside (not deleted), and the one before
    it, whose next loss was finite, is the last good one; training on from it works."""
    every_step = ["--config.train.checkpoint_every=1", "--config.train.eval_interval=100"]
    assert _train(tmp_path, args=["--config.train.num_steps=3", *every_step]).returncode == 0
    result = _train(tmp_path, args=["--config.train.num_steps=30", *every_step,
                                    "--config.train.learning_rate=1e30",
                                    "--config.train.weight_decay=0"])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "non-finite training loss (nan)" in lines[0], result.stderr
    bad_step = int(lines[0].split(" at step ")[1].split(":")[0])
    assert bad_step >= 5  # steps 4 .. bad_step - 1 were saved with a finite loss
    assert (f"the checkpoint of step {bad_step - 1}, whose parameters gave it, was moved to "
            f"{tmp_path / 'checkpoints_damaged'}/{bad_step - 1}.") in lines[0]
    assert f"the last good checkpoint (step {bad_step - 2}) is kept" in lines[0]
    assert [p.name.split(".")[0] for p in (tmp_path / "checkpoints_damaged").iterdir()] == [
        str(bad_step - 1)]
    run = load_run(tmp_path)
    assert run.step == bad_step - 2
    assert all(np.isfinite(np.asarray(p)).all() for p in __import__("jax").tree.leaves(run.state))
    resumed = _train(tmp_path, args=[f"--config.train.num_steps={bad_step + 2}", *every_step])
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from the checkpoint at step {bad_step - 2}\n" in resumed.stdout


def test_a_last_step_that_makes_the_parameters_non_finite_is_not_saved(tmp_path):
    """The last step has no next step whose loss would show its update's NaN: the run ended
    with exit 0, a val loss of null, a sample of newlines and that step's checkpoint, which the
    next resume failed on. Its evaluation now stops it, and step 4's checkpoint is the newest."""
    assert _train(tmp_path, args=["--config.train.num_steps=4"]).returncode == 0
    result = _train(tmp_path, args=["--config.train.num_steps=5",
                                    "--config.train.learning_rate=1e30",
                                    "--config.train.weight_decay=0"])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: non-finite evaluation losses (train_loss nan, val_loss nan) at step 5: "
        "stopped; the last good checkpoint (step 4) is kept. Try a lower "
        "--config.train.learning_rate"]
    assert load_run(tmp_path).step == 4
    assert [r["step"] for r in read_metrics(tmp_path)][-1] == 4  # no record of null losses
    resumed = _train(tmp_path, args=["--config.train.num_steps=6"])
    assert resumed.returncode == 0, resumed.stderr


def test_a_finite_loss_with_a_gradient_norm_past_float32_stops_training_too(tmp_path):
    """Parameters whose loss is finite but whose gradient is not: the last checkpoint's ln_f
    bias at 1e30 on channel 0, whose lm_head row is zeroed (0 · 1e30 = 0: the logits stay
    finite), so that row's gradient is 1e30 · (p - y), whose squares pass float32's range:
    the gradient norm is inf. Resumed, the run stops at the next step with the one line of
    a NaN loss, sets that checkpoint aside and keeps the one before, which restores."""
    import jax

    from gpt_jax.checkpoint import Checkpoints

    every_step = ["--config.train.checkpoint_every=1", "--config.train.eval_interval=100"]
    assert _train(tmp_path, args=["--config.train.num_steps=2", *every_step]).returncode == 0
    run = load_run(tmp_path)
    params = jax.tree.map(np.array, run.params)
    params["ln_f"]["bias"][0] = 1e30
    params["lm_head"]["kernel"][0] = 0.0
    shutil.rmtree(tmp_path / "checkpoints" / "2")
    checkpoints = Checkpoints(tmp_path)
    checkpoints.save(2, run.state.replace(params=params))
    checkpoints.close()

    result = _train(tmp_path, args=["--config.train.num_steps=4", *every_step])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    said = re.fullmatch(
        r"error: non-finite training loss \((.+)\) or gradient norm \(inf\) at step 3: stopped; "
        r"the checkpoint of step 2, whose parameters gave it, was moved to (.+); the last "
        r"good checkpoint \(step 1\) is kept\. Try a lower --config\.train\.learning_rate",
        lines[0])
    assert said, lines[0]
    assert 0 < float(said[1]) < 10  # a finite cross-entropy over 65 characters
    assert said[2].startswith(f"{tmp_path / 'checkpoints_damaged'}/2.")
    kept = load_run(tmp_path)
    assert kept.step == 1
    assert all(np.isfinite(np.asarray(p)).all() for p in jax.tree.leaves(kept.state))


def test_a_second_trainer_is_refused_and_a_killed_one_leaves_no_lock(tmp_path):
    first = _start(tmp_path, "--config.train.num_steps=1000000")
    try:
        _wait_for_line(first, "step(s) took")
        second = _train(tmp_path, args=[])
        assert second.returncode == 2
        assert second.stderr.strip().splitlines() == [
            f"error: workdir {tmp_path} is in use by a running trainer (pid {first.pid}); "
            "wait for it or choose another --workdir"]
    finally:
        first.kill()
        first.wait()
    third = _train(tmp_path, args=["--config.train.num_steps=5"])
    assert third.returncode == 0, third.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 10-step run for the sampler tests (which only read it)."""
    workdir = tmp_path_factory.mktemp("trained")
    result = _train(workdir, args=["--config.train.num_steps=10"])
    assert result.returncode == 0, result.stderr
    return workdir


ANNOUNCE = ("import sys\nfrom gpt_jax import generation\nwait = generation.wait_interruptibly\n"
            "def announced(x, poll_s=0.05):\n"
            "    print('generating', file=sys.stderr, flush=True)\n    wait(x, poll_s)\n"
            "generation.wait_interruptibly = announced\n"
            "sys.argv[0] = 'gpt_jax.sample'\nfrom gpt_jax.sample import main\nmain()\n")


def _generating(workdir) -> subprocess.Popen:
    """The sampler on a generation of minutes, returned once it has been dispatched (not
    while the sampler still loads or compiles: the wrapper says when)."""
    # pytest-xdist's workers ignore SIGINT, and an ignored SIGINT is inherited: a shell's
    # foreground command gets it with its default action, which Python turns into Ctrl-C.
    proc = subprocess.Popen([*exec_with("default=INT"), sys.executable, "-c", ANNOUNCE,
                             f"--workdir={workdir}", "--max_new_tokens=10000000",
                             "--num_samples=8"], cwd=REPO,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stderr.readline() == "generating\n"
    time.sleep(1)
    assert proc.poll() is None
    return proc


@pytest.mark.parametrize("signum, word, code", [(signal.SIGINT, "interrupted", 130),
                                                (signal.SIGTERM, "terminated", 143),
                                                (signal.SIGHUP, "hung up", 129)])
def test_the_sampler_stops_promptly_on_a_signal(trained, signum, word, code):
    """A signal while a long generation runs ends it at once, with one line."""
    proc = _generating(trained)
    start = time.perf_counter()
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert time.perf_counter() - start < 3, "the signal waited for the generation to end"
    assert proc.returncode == code and err.strip().splitlines() == [word]


def test_a_damaged_checkpoint_that_cannot_be_set_aside_is_not_called_a_start_over(tmp_path):
    """Steps 10 and 20 restore: the line asks for the file in the way moved, and does not
    say that the next run starts from step 0 (it resumes from step 10 once that is done)."""
    assert _train(tmp_path, args=["--config.train.num_steps=20"]).returncode == 0
    for f in (tmp_path / "checkpoints" / "20").rglob("*"):
        if f.is_file() and f.parent.name == "d":
            f.write_bytes(b"garbage")
    (tmp_path / "checkpoints_damaged").write_text("a file in the way")
    refused = _train(tmp_path, args=["--config.train.num_steps=30"])
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].endswith(
        "checkpoints_damaged, where it would be set aside, is a file: move that file away")
    assert "step 0" not in refused.stderr
    (tmp_path / "checkpoints_damaged").unlink()
    resumed = _train(tmp_path, args=["--config.train.num_steps=30"])
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from the checkpoint at step 10" in resumed.stdout + resumed.stderr


def test_when_every_checkpoint_is_damaged_the_run_says_so_then_starts_over(tmp_path):
    assert _train(tmp_path, args=["--config.train.num_steps=20"]).returncode == 0
    for f in (tmp_path / "checkpoints").rglob("*"):
        if f.is_file() and f.parent.name == "d":
            f.write_bytes(b"garbage")
    refused = _train(tmp_path, args=["--config.train.num_steps=20"])
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [refused.stderr.strip()]  # one line
    assert "step(s) 20, 10 damaged; moved to" in refused.stderr
    assert "Run the same command again to start from step 0" in refused.stderr
    restarted = _train(tmp_path, args=["--config.train.num_steps=20"])
    assert restarted.returncode == 0, restarted.stderr
    assert "training starts again from step 0" in restarted.stderr
    old = [json.loads(x)["step"] for x in
           (tmp_path / "metrics.jsonl.before_restart").read_text().splitlines()]
    assert old == [0, 10, 20]  # the earlier metrics are kept, not overwritten
    assert load_run(tmp_path).step == 20


def test_a_failed_run_leaves_no_workdir_behind(tmp_path):
    result = _train(tmp_path / "new", args=["--config.data.path=/no/such/file.txt"])
    assert result.returncode == 2
    assert not (tmp_path / "new").exists()


def test_data_path_expands_home_and_drops_a_byte_order_mark(tmp_path):
    (tmp_path / "data.txt").write_bytes("\ufeff".encode() + b"hello world, " * 50)
    result = run_python(["train.py", f"--config={TINY}", f"--workdir={tmp_path / 'run'}",
                         "--config.data.path=~/data.txt", "--config.train.num_steps=2"],
                        env={"HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    chars = json.loads((tmp_path / "run" / "vocab.json").read_text())["chars"]
    assert chars == sorted(set("hello world, "))  # no U+FEFF token


def test_resume_allows_what_does_not_change_the_parameters_and_refuses_the_rest(tmp_path):
    assert _train(tmp_path, args=["--config.train.num_steps=10"]).returncode == 0
    neutral = _train(tmp_path, args=["--config.train.num_steps=20", "--config.model.query_chunk=4",
                                     "--config.model.compute_dtype=bfloat16",
                                     "--config.model.fused_decode=True"])
    assert neutral.returncode == 0, neutral.stderr
    assert "resuming with a changed setting: model.query_chunk: 0 → 4" in neutral.stdout
    assert "resuming with a changed setting: model.compute_dtype: 'float32' → 'bfloat16'" \
        in neutral.stdout
    assert "resuming with a changed setting: model.fused_decode: False → True" in neutral.stdout
    assert "resuming with a changed setting: train.num_steps: 10 → 20" in neutral.stdout
    for change in ("--config.model.n_embd=32", "--config.model.pos_emb=none",
                   "--config.model.activation=gelu"):
        refused = _train(tmp_path, args=["--config.train.num_steps=30", change])
        assert refused.returncode == 2
        assert "holds a checkpoint of a different model" in refused.stderr
    # Clipping on or off is another optimizer chain, whose state the checkpoint holds.
    refused = _train(tmp_path, args=["--config.train.num_steps=30", "--config.train.grad_clip=0"])
    assert refused.returncode == 2 and refused.stderr.startswith(
        f"error: workdir {tmp_path} was trained with train.grad_clip=1.0, clipping on"), (
        refused.stderr)
    assert load_run(tmp_path).step == 20


@pytest.mark.parametrize("config, wait_s", [("shakespeare_char_cpu.py", 1.5),
                                            ("shakespeare_char.py", 5.0)])
def test_sigterm_before_training_starts_ends_at_once_with_one_line(tmp_path, config, wait_s):
    """While jax compiles (seconds, the cache off): nothing to save yet. The scaled GPT's
    steps compile for ten seconds or more; the signal used to wait for their end."""
    import os

    proc = subprocess.Popen([sys.executable, "train.py", f"--config=configs/{config}",
                             f"--workdir={tmp_path}", "--config.train.batch_size=1"], cwd=REPO,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={k: v for k, v in {**os.environ, "GPT_JAX_CACHE_DIR": "off"}
                                 .items() if k != "JAX_COMPILATION_CACHE_DIR"})
    time.sleep(wait_s)
    proc.send_signal(signal.SIGTERM)
    start = time.perf_counter()
    _, err = proc.communicate(timeout=60)
    ended_s = time.perf_counter() - start
    assert proc.returncode == 143, err
    last = err.strip().splitlines()
    assert len(last) == 1 and (last[0] == "terminated" or last[0].startswith("terminated at")), err
    assert ended_s < 3, f"ended {ended_s:.1f} s after the signal"


def _foreground(args: list[str], **kwargs) -> subprocess.Popen:
    """A command as a shell starts it in the foreground: SIGINT with its default action (the
    pytest-xdist worker ignores it, and an ignored SIGINT is inherited)."""
    return subprocess.Popen([*exec_with("default=INT"), sys.executable, *args], cwd=REPO,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def _wait_for_the_first_step(proc: subprocess.Popen) -> None:
    """Until the command's first step has installed its handlers (first_step.py): SIGXCPU,
    the last, is caught. A signal before it meets Python's start-up, not the command (a fixed
    0.3 s was too short on a loaded machine: killed by SIGTERM, a KeyboardInterrupt trace)."""
    caught = 1 << (signal.SIGXCPU - 1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        status = Path(f"/proc/{proc.pid}/status").read_text()
        if int(re.search(r"^SigCgt:\s*([0-9a-f]+)", status, re.M)[1], 16) & caught:
            return
        time.sleep(0.005)
    assert proc.poll() is None, proc.communicate()
    raise AssertionError("the command installed no handler of SIGXCPU in 60 s")


@pytest.mark.parametrize("command", [["train.py", f"--config={TINY}"],
                                     ["-m", "gpt_jax.sample"], ["-m", "gpt_jax.ladder"]])
@pytest.mark.parametrize("signum, word, code", [(signal.SIGINT, "interrupted", 130),
                                                (signal.SIGTERM, "terminated", 143)])
def test_a_signal_while_python_still_imports_is_one_line(tmp_path, command, signum, word, code):
    """In the first second Python is importing jax: a signal there would leave a module
    half-imported and print its traceback. Now: one line, the signal's status, nothing
    written."""
    proc = _foreground([*command, f"--workdir={tmp_path / 'run'}"])
    _wait_for_the_first_step(proc)  # then importing jax takes more than a second
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code and err.splitlines() == [word], err
    assert not (tmp_path / "run").exists()


def test_a_signal_as_the_command_takes_over_its_handlers_is_one_line():
    """cli.run installed its handlers, then started the watch of native calls, outside its
    `try`: a SIGTERM in between raised out of it, a traceback and exit status 1."""
    script = ("import os, signal\n"
              "from gpt_jax import cli, stop\n"
              "stop.watch_native_calls = lambda: os.kill(os.getpid(), signal.SIGTERM)\n"
              "cli.run(lambda: print('ran'))\n")
    proc = _foreground(["-c", script])
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out, err) == (143, "", "terminated\n")


SWALLOWED = """
import gc, signal, sys, time
from gpt_jax import cli

def main():
    def raise_once(phase, info):  # as a signal's exception raised inside jax's gc callback
        gc.callbacks.remove(raise_once)
        if sys.argv[1] == "INT":
            raise KeyboardInterrupt
        raise cli.Terminated(getattr(signal, "SIG" + sys.argv[1]))
    gc.callbacks.append(raise_once)
    gc.collect()  # Python prints "Exception ignored in ..." and goes on
    time.sleep(30)
    print("finished as if no signal had come")

cli.run(main)
"""


@pytest.mark.parametrize("name, word, code", [("TERM", "terminated", 143),
                                              ("INT", "interrupted", 130),
                                              ("HUP", "hung up", 129)])
def test_a_signal_swallowed_by_a_gc_callback_still_stops_the_command(name, word, code):
    """A signal's exception raised while a garbage-collection callback runs (jax has one) is
    printed by Python and dropped: the command ran on and exited 0. Now the signal is sent
    again once the callback has returned, and the command stops as it should."""
    proc = _foreground(["-c", SWALLOWED, name])
    start = time.perf_counter()
    out, err = proc.communicate(timeout=60)
    assert time.perf_counter() - start < 20, "the signal was lost"
    assert proc.returncode == code and err.splitlines() == [word] and not out, err


IMPORTS_A_MODULE_THAT_IS_SIGNALLED = """
import os, signal, sys, time
from gpt_jax import cli

def main():
    sys.path.insert(0, sys.argv[1])
    import slow_module  # sends the signal while it is being imported
    print("imported")

cli.run(main)
"""


@pytest.mark.parametrize("signum, word, code", [(signal.SIGINT, "interrupted", 130),
                                                (signal.SIGTERM, "terminated", 143),
                                                (signal.SIGHUP, "hung up", 129)])
def test_a_signal_during_a_later_import_is_one_line(tmp_path, signum, word, code):
    """Commands import some modules only when they need them (the trainer, matplotlib): a
    signal while one loads ends the command at once, with one line, not a half-imported
    module and the traceback of the next import of it."""
    (tmp_path / "slow_module.py").write_text(
        f"import os, signal, time\nos.kill(os.getpid(), {int(signum)})\ntime.sleep(0.5)\n")
    proc = _foreground(["-c", IMPORTS_A_MODULE_THAT_IS_SIGNALLED, str(tmp_path)])
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code and err.splitlines() == [word] and not out, err


@pytest.mark.parametrize("signal_name, code, word", [("TERM", 143, "terminated"),
                                                     ("INT", 130, "interrupted")])
def test_a_signal_during_the_final_save_finishes_it_then_says_so(tmp_path, signal_name, code,
                                                                  word):
    """A scheduler's SIGTERM that lands after the last step (here: just as the final save
    starts) lets the save finish, then ends with the signal's status, not 0: a caller that
    sent it must not take a stopped command for a finished one, nor a stop request for lost."""
    env = {ENV: "save:20", "GPT_JAX_KILL_SIGNAL": signal_name}
    result = run_python(["train.py", f"--config={TINY}", f"--workdir={tmp_path}",
                         "--config.train.num_steps=20", "--config.train.checkpoint_every=10",
                         "--config.train.eval_interval=10"], env=env)
    assert result.returncode == code, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"{word} after the last step, 20: checkpoint saved in {tmp_path / 'checkpoints'}"]
    assert load_run(tmp_path).step == 20


def _cpu_gpt(workdir, *extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-u", "train.py",
                             "--config=configs/shakespeare_char_cpu.py", f"--workdir={workdir}",
                             "--config.sample.max_new_tokens=0", *extra], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_a_signal_during_a_long_evaluation_before_training_ends_the_command_within_seconds(
        tmp_path):
    """The step-0 evaluation here is one XLA call of about 30 s (600 batches of 2,048 tokens a
    split), during which Python cannot run a signal handler: the watch of the wakeup fd
    ends the command for it."""
    proc = _cpu_gpt(tmp_path, "--config.train.batch_size=32", "--config.train.eval_iters=600")
    _wait_for_line(proc, "ready in")
    time.sleep(1.0)
    start = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert time.perf_counter() - start < 5 and proc.returncode == 143, err
    assert err.strip() == "terminated" and "step      0" not in out


def test_a_signal_during_a_long_evaluation_in_training_saves_the_step_within_seconds(tmp_path):
    """A scheduler's grace period (about 30 s) can be shorter than one evaluation: the first
    SIGTERM during the evaluation at step 4 (one XLA call of about 30 s here) saves step 4 and
    ends the command without waiting for it, and the run resumes from step 4, evaluating it
    first: its figures were never written."""
    first = _cpu_gpt(tmp_path, "--config.train.num_steps=2", "--config.train.eval_iters=1")
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    proc = _cpu_gpt(tmp_path, "--config.train.num_steps=6", "--config.train.eval_interval=4",
                    "--config.train.log_interval=1", "--config.train.batch_size=32",
                    "--config.train.eval_iters=600")
    _wait_for_line(proc, "step      4 | loss")  # printed as the evaluation starts
    time.sleep(1.5)
    start = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert time.perf_counter() - start < 10 and proc.returncode == 143, err
    assert err.strip().startswith("terminated at step 4: checkpoint saved"), err
    assert "val loss" not in out  # the evaluation never ended
    assert load_run(tmp_path).step == 4
    resumed = _cpu_gpt(tmp_path, "--config.train.num_steps=5", "--config.train.eval_interval=4",
                       "--config.train.eval_iters=1")
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert "resumed from the checkpoint at step 4\n" in out
    assert [r["step"] for r in read_metrics(tmp_path)] == [0, 2, 4, 5]


def _signalled_during_a_long_step(workdir, micro_batches: int = 64,
                                  copies: int = 1) -> tuple[subprocess.Popen, float]:
    """The CPU GPT whose one step of micro-batches of 64 rows is one XLA call (about 0.2 s a
    micro-batch on 2 cores), sent a SIGTERM (`copies` of it, back to back) a second into its
    first step; and the seconds between the first copy and the last."""
    proc = _cpu_gpt(workdir, f"--config.train.batch_size={64 * micro_batches}",
                    f"--config.train.grad_accum_steps={micro_batches}",
                    "--config.train.eval_iters=1")
    _wait_for_line(proc, "step      0")
    time.sleep(1.0)
    start = time.monotonic()
    for _ in range(copies):
        os.kill(proc.pid, signal.SIGTERM)
    return proc, time.monotonic() - start


def test_a_second_signal_during_a_long_step_aborts_within_seconds(tmp_path):
    """One step of 64 micro-batches (about 13 s) is one XLA call: the first signal asks
    for a checkpoint at its end, the second must not wait for it."""
    proc, _ = _signalled_during_a_long_step(tmp_path)
    time.sleep(0.3)
    start = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert time.perf_counter() - start < 5 and proc.returncode == 143, err
    assert err.strip() == "terminated"
    assert not (tmp_path / "checkpoints" / "1").exists()


def test_one_signal_delivered_twice_still_saves_the_step_before_stopping(tmp_path):
    """A terminal and a launcher that forwards its signal deliver it twice within milliseconds;
    Python runs the handler once: that is one request for a checkpoint, not an abort. A step
    of 16 micro-batches (about 3 s) is long enough for both to land inside it."""
    proc, gap_s = _signalled_during_a_long_step(tmp_path, micro_batches=16, copies=2)
    _, err = proc.communicate(timeout=120)
    if gap_s > 0.05:  # this test was held up between the two: two requests, as they were
        pytest.skip(f"the two copies went {gap_s:.3f} s apart on this loaded machine")
    assert proc.returncode == 143, err
    assert err.strip().startswith("terminated at step 1: checkpoint saved"), err
    assert load_run(tmp_path).step == 1



SIGNALLED_TWICE_IN_TRAINING = """
import os, signal, sys, time
from gpt_jax import cli
from gpt_jax.stop import StopRequest

def main():
    signum, gap = getattr(signal, "SIG" + sys.argv[1]), float(sys.argv[2])
    with StopRequest(lambda note: None) as stop:
        os.kill(os.getpid(), signum)  # the first asks for a save at the next step boundary
        time.sleep(gap)
        assert stop.requested
        os.kill(os.getpid(), signum)  # a second one aborts it; a copy of the first does not
        time.sleep(1)
    print("not stopped")

cli.run(main)
"""


@pytest.mark.parametrize("name, word, code", [("TERM", "terminated", 143),
                                              ("INT", "interrupted", 130)])
def test_a_second_signal_during_training_is_reported_as_that_signal(name, word, code):
    """A second SIGTERM while a checkpoint is due aborts like a second Ctrl-C, and says so as
    a SIGTERM: 'terminated', 143 (it said 'interrupted', 130)."""
    result = run_python(["-c", SIGNALLED_TWICE_IN_TRAINING, name, "0.3"], timeout=60)
    assert result.returncode == code and result.stderr.splitlines() == [word], result.stderr
    assert "not stopped" not in result.stdout


@pytest.mark.parametrize("name", ["TERM", "HUP"])
def test_two_copies_of_one_signal_that_python_handles_both_are_one_request(name):
    """A launcher that forwards the terminal's signal: two copies milliseconds apart, both
    run by the Python handler (the main thread was in Python): one request to save, not an
    abort without a save."""
    result = run_python(["-c", SIGNALLED_TWICE_IN_TRAINING, name, "0.005"], timeout=60)
    assert result.returncode == 0 and "not stopped" in result.stdout, result.stderr


SIGNALLED_AT_EXIT = """
import atexit, os, signal, time
from gpt_jax import cli

def main():
    print("done", flush=True)
    atexit.register(lambda: (os.kill(os.getpid(), signal.SIGTERM), time.sleep(5)))

cli.run(main)
"""


def test_a_signal_after_the_work_while_the_interpreter_exits_is_one_line():
    """A scheduler's SIGTERM in the moments after a command's work, while jax and the other
    libraries wind down at exit, ends it at once with one line (it was a traceback)."""
    result = run_python(["-c", SIGNALLED_AT_EXIT], timeout=60)
    assert result.returncode == 143 and result.stderr.splitlines() == ["terminated"], (
        result.stderr)
    assert result.stdout == "done\n"


SIGNALLED_AFTER_THE_EXIT_HANDLERS = """
import atexit, os, subprocess, sys
from gpt_jax import cli

def main():
    import jax.numpy as jnp
    (jnp.ones(3) * 2).block_until_ready()  # a backend to tear down at exit
    print("done", flush=True)

# Registered before cli.run's own, so it runs after them: a SIGTERM that comes during the
# interpreter's own teardown, once Python has put back each signal's default action.
atexit.register(lambda: subprocess.Popen(["sh", "-c", f"sleep 0.01; kill -TERM {os.getpid()}"]))
cli.run(main)
"""


def test_a_signal_in_the_interpreters_last_moments_does_not_kill_the_finished_command():
    """Later still, Python's finalization restores the default action of the signals it
    handles, and jax's teardown takes a tenth of a second more: a SIGTERM then killed the
    command without a word (status -15) after its work had succeeded. It is ignored now."""
    result = run_python(["-c", SIGNALLED_AFTER_THE_EXIT_HANDLERS], timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (0, "done\n", "")


@pytest.mark.parametrize("abort", [KeyboardInterrupt, stop.Terminated])
def test_a_second_signal_during_the_stops_save_aborts_with_its_own_status(tmp_path,
                                                                          monkeypatch, abort):
    """A second Ctrl-C that cut the stop's own save short: the save then reported "its folder
    was not written" as a UserError (exit 2) in place of the abort (exit 130) the user asked
    for. Now the abort goes on; the checkpoint before stays (orbax clears the half-written
    folder at the next start)."""
    from gpt_jax import trainer
    from gpt_jax.errors import UserError

    closed = []

    class Cut:
        def __init__(self, config, workdir):
            pass

        def run(self):
            raise abort()

        def close(self):
            closed.append(True)
            raise UserError("cannot save the checkpoint of step 8: its folder was not written")

    monkeypatch.setattr(trainer, "Trainer", Cut)
    with pytest.raises(abort):
        trainer.train_and_evaluate(None, tmp_path / "run")
    assert closed == [True]

    class Failed(Cut):  # an error of its own, not an abort: the save's failure is the news
        def run(self):
            raise RuntimeError("boom")

    monkeypatch.setattr(trainer, "Trainer", Failed)
    with pytest.raises(UserError, match="its folder was not written"):
        trainer.train_and_evaluate(None, tmp_path / "run2")


def test_a_new_run_stopped_before_its_first_save_leaves_no_workdir_behind(tmp_path):
    """It left WORKDIR/checkpoints/, empty: the workdir was removed only when it was empty."""
    result = run_python(["train.py", f"--config={TINY}", f"--workdir={tmp_path / 'new'}"],
                        env={ENV: "build:0", SIGNAL_ENV: "TERM"})
    assert result.returncode == 143, result.stderr
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("name, content", [
    ("config.json", '{"my": "precious settings"}'),  # `--workdir=.` in a project of one's own
    ("vocab.json", "[1, 2, 3]"),
    ("data.json", '{"rows": 3}'),
    ("metrics.jsonl", "not metrics\n"),
    ("loss.png", "my own plot"),  # drawn files: no run's config.json beside them
    ("samples/step_000000.txt", "my notes"),
])
def test_a_run_refuses_to_overwrite_a_file_of_a_run_s_name_that_no_run_wrote(
        tmp_path, name, content):
    (tmp_path / name).parent.mkdir(exist_ok=True)
    (tmp_path / name).write_text(content)
    result = _train(tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr == (f"error: {tmp_path / name} is not a file that a run wrote, and a "
                             f"run starting in {tmp_path} would overwrite it: choose another "
                             f"--workdir, or move {name} away\n")
    assert (tmp_path / name).read_text() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == [name.split("/")[0]]  # no
    # checkpoints/ left


def test_a_run_killed_before_its_first_checkpoint_starts_again_over_its_own_files(tmp_path):
    """The files of a run that never saved a checkpoint are a run's: the next one starts
    over them (a last metrics line cut short by the kill included)."""
    assert _train(tmp_path, kill_at="step:3").returncode == -signal.SIGKILL
    assert {"config.json", "vocab.json"} <= {p.name for p in tmp_path.iterdir()}
    with open(tmp_path / "metrics.jsonl", "a") as metrics:
        metrics.write('{"step": 4, "train_lo')
    assert _train(tmp_path).returncode == 0


def test_tensorboard_shows_what_metrics_jsonl_holds_after_a_resume_from_an_earlier_step(
        tmp_path):
    """Killed as its checkpoint of step 30 was being written, after step 30's evaluation, and
    resumed from step 20 with another rate: metrics.jsonl's records past 20 are rewritten, and
    TensorBoard showed the killed run's values beside the resumed run's."""
    from test_switches import tensorboard_scalars

    every_10 = [arg for arg in ARGS if "eval_interval" not in arg] + [
        "--config.train.eval_interval=10", "--config.train.log_interval=5"]
    assert _train(tmp_path, kill_at="save:30", args=every_10).returncode == -signal.SIGKILL
    resumed = _train(tmp_path, "--config.train.learning_rate=0.02", args=every_10)
    assert "resumed from the checkpoint at step 20" in resumed.stdout
    assert resumed.returncode == 0, resumed.stderr
    shown = tensorboard_scalars(tmp_path)  # raises where a step holds two values
    records = read_metrics(tmp_path)
    assert shown["val_loss"] == {r["step"]: pytest.approx(r["val_loss"]) for r in records}
    assert max(shown["step_loss"]) == 40


def test_a_finished_run_whose_last_evaluation_was_stopped_writes_it_when_run_again(tmp_path):
    """A stop during the last step's evaluation saves the step, not its figures (what this
    test leaves by dropping the last record): running the command again evaluated it, said
    so, and wrote nothing, every time; the plot was never drawn."""
    assert _train(tmp_path).returncode == 0
    records = read_metrics(tmp_path)
    (tmp_path / "metrics.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in records[:-1]))
    assert not (tmp_path / "loss.png").exists()
    again = _train(tmp_path, "--config.train.loss_plot=True")
    assert again.returncode == 0, again.stderr
    rewritten = read_metrics(tmp_path)
    assert [r["step"] for r in rewritten] == [r["step"] for r in records]
    assert rewritten[-1]["val_loss"] == records[-1]["val_loss"]  # the same state, evaluated
    assert (tmp_path / "loss.png").exists()
    assert _train(tmp_path).returncode == 0 and read_metrics(tmp_path) == rewritten


def test_a_resume_that_changes_the_rate_at_its_step_says_by_how_much(tmp_path):
    """A finished cosine run resumed with more steps: the schedule is stretched, and the rate
    climbs back up at once (1.0e-4 → 5.8e-4 here); only 'train.num_steps: 40 → 80' was said."""
    from tiny_config import file_config

    from gpt_jax import resume, run_files
    from gpt_jax.optim import learning_rate_schedule

    config = file_config()
    config.train.update(dict(lr_schedule="cosine", warmup_steps=5, num_steps=40,
                             learning_rate=1e-3, min_learning_rate=1e-4))
    run_files.save_config(tmp_path, config)
    longer = file_config()
    longer.train.update(config.train.to_dict())
    longer.train.num_steps = 80
    said: list[str] = []
    resume.check_config(tmp_path, longer, said.append, step=40)
    before, now = (float(learning_rate_schedule(c.train)(40)) for c in (config, longer))
    assert now > 4 * before
    assert said == ["resuming with a changed setting: train.num_steps: 40 → 80",
                    f"the learning rate at step 40 is now {now:.3g}, where the run's schedule "
                    f"until now had {before:.3g}: the new settings' schedule applies from here"]
    said.clear()  # a change that leaves the rate alone adds nothing
    longer.train.num_steps, longer.train.log_interval = 40, 7
    resume.check_config(tmp_path, longer, said.append, step=40)
    assert said == ["resuming with a changed setting: train.log_interval: 10 → 7"]
