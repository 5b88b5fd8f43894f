"""Multi-process training on one machine: 2 processes × 2 fake CPU devices over 127.0.0.1."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, assert_trees_close, devices_env, exec_with, free_port, run_python
from gpt_jax.metrics import read_metrics
from gpt_jax.restore import load_run

TINY = (REPO / "tests" / "tiny_config.py").as_posix()
ARGS = ["--config.train.num_steps=12", "--config.train.batch_size=16", "--config.model.dropout=0.2",
        "--config.train.eval_interval=6", "--config.train.eval_iters=2",
        "--config.train.checkpoint_every=6"]


def _devices(n: int) -> dict:
    return devices_env(n)


def _two_processes(workdir, *args, devices=1, timeout_s=60, settings=(), **popen):
    """Processes 0 and 1 of one run of the tiny config, unbuffered, with output piped;
    `settings` as exec_with.py's."""
    port = free_port()
    start = exec_with(*settings) if settings else []
    return [subprocess.Popen(
        [*start, sys.executable, "-u", "train.py", f"--config={TINY}", f"--workdir={workdir}",
         *args,
         f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", f"--process_id={i}",
         f"--distributed_timeout={timeout_s}"],
        cwd=REPO, env={**os.environ, **_devices(devices)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, **popen) for i in range(2)]


def test_two_processes_match_one_process_on_one_device(tmp_path):
    """2 processes × 2 devices train what 1 device trains (test_multidevice.py: any layout of one
    process does), up to float32 sums in another order. The one-device run goes alongside."""
    port = free_port()
    start = time.perf_counter()
    commands = [([f"--workdir={tmp_path / 'two'}", f"--coordinator_address=127.0.0.1:{port}",
                  "--num_processes=2", f"--process_id={i}", "--distributed_timeout=60"],
                 _devices(2)) for i in range(2)]
    commands.append(([f"--workdir={tmp_path / 'one'}"], _devices(1)))
    procs = [subprocess.Popen([sys.executable, "train.py", f"--config={TINY}", *ARGS, *flags],
                              cwd=REPO, env={**os.environ, **env}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for flags, env in commands]
    outs = [p.communicate(timeout=240) for p in procs]
    elapsed = time.perf_counter() - start
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    assert "2 process(es) × 2 cpu device(s)" in outs[0][0]
    assert "step" not in outs[1][0]  # only process 0 logs
    print(f"the 2-process and the 1-device runs took {elapsed:.1f} s")

    # Saved by 2 processes × 2 devices, restored here on 1 process × 1 device.
    two_run, one_run = load_run(tmp_path / "two"), load_run(tmp_path / "one")
    assert two_run.step == one_run.step == 12
    assert_trees_close(two_run.state, one_run.state, rtol=1e-5, atol=1e-7)
    # and the evaluations score the same batches (each process its own rows of them)
    two, one = read_metrics(tmp_path / "two"), read_metrics(tmp_path / "one")
    assert [r["step"] for r in two] == [r["step"] for r in one] and len(one) > 1
    for a, b in zip(two, one, strict=True):
        for name in ("train_loss", "val_loss", "grad_norm"):
            assert (a[name] is b[name] is None  # (step 0's grad_norm)
                    or a[name] == pytest.approx(b[name], rel=1e-5)), (a, b)


def test_unreachable_coordinator_fails_fast_with_one_line(tmp_path):
    start = time.perf_counter()
    result = run_python(["train.py", f"--config={TINY}", f"--workdir={tmp_path}",
                         f"--coordinator_address=127.0.0.1:{free_port()}", "--num_processes=2",
                         "--process_id=1", "--distributed_timeout=3"], timeout=60)
    elapsed = time.perf_counter() - start
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach the coordinator at 127.")
    assert elapsed < 30
    assert not (tmp_path / "checkpoints").exists()


def test_partial_distributed_flags_are_refused(tmp_path):
    result = run_python(["train.py", f"--config={TINY}", f"--workdir={tmp_path}",
                         "--num_processes=2"], timeout=60)
    assert result.returncode == 2 and "go together" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: ")


def _terminated_steps(procs, outs) -> list[int]:
    """The step each process said it stopped at, having ended as a SIGTERM ends a run."""
    steps = []
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 143, err
        last = err.strip().splitlines()[-1]
        assert last.startswith("terminated at step "), err
        steps.append(int(last.split("terminated at step ")[1].split(":")[0]))
    return steps


def test_sigterm_to_one_process_stops_every_process_at_the_same_saved_step(tmp_path):
    """A scheduler's SIGTERM that reaches one host only: the other learns of it inside the
    train step, and both save the same step and exit, instead of waiting on each other."""
    procs = _two_processes(tmp_path, "--config.train.num_steps=1000000",
                           "--config.train.batch_size=16",
                           "--config.train.checkpoint_every=1000000",
                           "--config.train.eval_interval=1000000", devices=2)
    try:
        for line in procs[0].stdout:
            if "step(s) took" in line:
                break
        procs[1].send_signal(signal.SIGTERM)
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill()
    steps = _terminated_steps(procs, outs)
    assert steps[0] == steps[1]
    assert load_run(tmp_path).step == steps[0]


def test_sigterm_to_one_process_during_the_final_evaluation_ends_every_process_alike(tmp_path):
    """The signalled process used to leave once the last step was saved, while the other was
    still evaluating and sampling: the other then reported a lost peer (exit 2) although the
    run had finished. Now every process learns of the signal and ends with the same line."""
    procs = _two_processes(tmp_path, "--config.train.num_steps=2",
                           "--config.train.eval_iters=16000")
    try:
        for line in procs[0].stdout:
            if "step(s) took" in line:  # step 2, then its evaluation of some seconds
                break
        time.sleep(0.5)
        procs[1].send_signal(signal.SIGTERM)
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 143, err
        assert err.strip().splitlines() == [
            f"terminated after the last step, 2: checkpoint saved in {tmp_path / 'checkpoints'}"]
    assert "step      2 | train loss" in outs[0][0] and "val loss" in outs[0][0]
    assert load_run(tmp_path).step == 2


def test_a_failure_of_process_0_alone_at_the_end_does_not_hang_the_other(tmp_path):
    """Process 0 draws the loss plot after the last save; where that fails (here a folder
    in its place), the other process must not wait for it in the final agreement on a stop
    until the heartbeat's timeout: it ends at once, done (0), or told that its peer failed.
    (A run's folder, its config.json there: in a new one, the folder in loss.png's place is
    refused before training.)"""
    from conftest import tiny_config
    from gpt_jax.run_files import save_config

    save_config(tmp_path, tiny_config())
    (tmp_path / "loss.png").mkdir()
    procs = _two_processes(tmp_path, "--config.train.num_steps=2",
                           "--config.train.loss_plot=True", timeout_s=60)
    outs = [procs[0].communicate(timeout=120)]
    ended = time.perf_counter()  # timed from here: the start-ups and compiles vary with load
    outs.append(procs[1].communicate(timeout=120))
    assert time.perf_counter() - ended < 30, "the other process waited for the timeout (60 s)"
    failure = f"cannot write {tmp_path / 'loss.png'}: a folder is in its place; move it away"
    assert procs[0].returncode == 2 and outs[0][1].strip().splitlines() == [
        f"error: {failure}"], outs[0][1]
    assert procs[1].returncode == 0 or (procs[1].returncode == 2 and (
        re.fullmatch(LOST, outs[1][1].strip())
        or outs[1][1].strip() == f"error: process 0 of this run failed: {failure}")), outs[1][1]
    assert load_run(tmp_path).step == 2


@pytest.mark.parametrize("signum, word, code", [(signal.SIGTERM, "terminated", 143),
                                                (signal.SIGINT, "interrupted", 130)])
def test_a_signal_before_training_ends_a_multi_process_run_with_its_line(tmp_path, signum,
                                                                          word, code):
    """jax.distributed.initialize puts a C++ handler of SIGTERM in Python's place: a
    scheduler's SIGTERM during the step-0 evaluation was ignored and the run trained on. And
    the signalled process's line went into the pipe that keeps jax's runtime logs off stderr,
    which os._exit left unread. Now it ends with its line, and the other with one line that
    names it (before any collective, the other waited --distributed_timeout, then blamed a
    frozen peer)."""
    procs = _two_processes(tmp_path, "--config.train.num_steps=20",
                           "--config.train.eval_iters=100000",
                           settings=["default=INT"])
    try:
        for line in procs[0].stdout:
            if "ready in" in line:  # the step-0 evaluation, of minutes, starts now
                break
        time.sleep(2)
        procs[1].send_signal(signum)
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert procs[1].returncode == code and outs[1][1].splitlines() == [word], outs[1][1]
    assert procs[0].returncode == 2, outs[0][1]  # told, not left to find a lost collective
    assert outs[0][1].splitlines() == [f"error: process 1 of this run failed: {word}"], outs[0][1]


STOPPED = ("error: process {} of this run showed no sign of life for --distributed_timeout=5 s "
           "(stopped, frozen or unreachable): stopping; run the same command on every process "
           "to resume from the newest checkpoint")
# Whichever hears of it first: a failed collective (cli.py), jax's runtime (runtime_log.py), or
# the checkpoint being saved at that moment (checkpoint.py), which names the one kept.
LOST = (r"error: another process of this run failed or was stopped \((a collective lost its "
        r"peer|jax's coordination service lost it)\); run the same command on every process "
        r"to resume from the newest checkpoint"
        r"|error: cannot save the checkpoint of step \d+ in \S+: .*peer.*; the checkpoint of "
        r"step \d+ is kept"
        r"|error: cannot save the checkpoint of step \d+ in \S+: process 0 of this run, which "
        r"holds jax's coordination service, failed or was stopped; the checkpoint of step \d+ "
        r"is kept"
        r"|error: process 0 of this run, which holds jax's coordination service, failed or was "
        r"stopped; the checkpoint of step \d+ is saved in \S+")


@pytest.mark.parametrize("stopped, signum, expected", [
    (0, signal.SIGSTOP, re.escape(STOPPED.format(0))),
    (1, signal.SIGSTOP, re.escape(STOPPED.format(1))),
    (0, signal.SIGKILL, LOST)], ids=["coordinator_stopped", "peer_stopped", "coordinator_killed"])
def test_a_stopped_or_killed_process_ends_the_other_with_one_line(tmp_path, stopped, signum,
                                                                  expected):
    """SIGSTOP (a frozen host) resets no connection: without a sign of life from its peer
    for --distributed_timeout, the other process ends with one line and exit status 2 instead
    of waiting, then dying in jax's C++ heartbeat check. A killed coordinator fails the
    collective at once: one line too, without the C++ runtime's own report of it. The
    checkpoint saved before stays."""
    timeout_s = 5
    procs = _two_processes(tmp_path, "--config.train.num_steps=1000000",
                           "--config.train.checkpoint_every=5",
                           "--config.train.eval_interval=1000000", timeout_s=timeout_s)
    try:
        for line in procs[0].stdout:
            if line.startswith("step") and "| loss" in line or "step(s) took" in line:
                break
        while not any(p.name.isdigit() for p in (tmp_path / "checkpoints").glob("*")):
            time.sleep(0.2)
        procs[stopped].send_signal(signum)
        start = time.perf_counter()
        _, err = procs[1 - stopped].communicate(timeout=timeout_s + 60)
        waited = time.perf_counter() - start
    finally:
        for p in procs:
            p.kill()
            p.communicate()
    assert procs[1 - stopped].returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and re.fullmatch(expected, lines[0]), err
    if signum == signal.SIGSTOP:  # its clock runs from the last beat heard, up to 1 s before
        assert timeout_s - 2 < waited < timeout_s + 30
    assert load_run(tmp_path).step >= 5


def test_processes_started_with_different_configs_are_refused(tmp_path):
    """A process given another batch size would otherwise train silently wrong numbers."""
    port = free_port()
    procs = [subprocess.Popen(
        [sys.executable, "train.py", f"--config={TINY}", f"--workdir={tmp_path}",
         f"--config.train.batch_size={8 * (i + 1)}", f"--coordinator_address=127.0.0.1:{port}",
         "--num_processes=2", f"--process_id={i}", "--distributed_timeout=60"],
        cwd=REPO, env={**os.environ, **_devices(1)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 2
        assert err.strip().splitlines() == [
            "error: process 1 was started with another config or other data than process 0: "
            "start every process with the same command, on the same data"]


def _each_process(tmp_path, flags_of, envs=({}, {}), cwds=(REPO, REPO), timeout=120,
                  config=TINY):
    """Processes 0 and 1 of one run, each with its own flags, environment and folder."""
    port = free_port()
    procs = [subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), f"--config={config}", *flags_of(i),
         f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", f"--process_id={i}",
         "--distributed_timeout=60"],
        cwd=cwds[i], env={**os.environ, **_devices(1), **envs[i]}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for i in range(2)]
    return procs, [p.communicate(timeout=timeout) for p in procs]


def _refused_alike(procs, outs, message: str) -> None:
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 2, err
        assert err.strip().splitlines() == [f"error: {message}"]


def test_processes_with_workdirs_of_their_own_are_refused(tmp_path):
    """Hosts without a shared folder: each would save half of every checkpoint, and resume
    from its own. Process 1 creates nothing."""
    procs, outs = _each_process(tmp_path, lambda i: [f"--workdir={tmp_path / 'ab'[i]}"])
    _refused_alike(procs, outs, (
        "process 1 does not see the workdir that process 0 writes (its folder holds no "
        "train.lock of process 0's): give every process one folder they all share, on a "
        "network file system"))
    assert not (tmp_path / "b").exists()
    assert not list((tmp_path / "a").glob("checkpoints/*"))


def test_processes_with_other_device_counts_are_refused_in_one_line(tmp_path):
    procs, outs = _each_process(tmp_path, lambda i: [f"--workdir={tmp_path}"],
                                envs=(_devices(2), _devices(1)))
    _refused_alike(procs, outs, (
        "process 1 has 1 local device(s) and process 0 has 2: every process must see as many "
        "(CUDA_VISIBLE_DEVICES, or the hosts' accelerators)"))


def test_processes_reading_other_data_at_one_path_are_refused(tmp_path, shakespeare):
    """Two hosts with other files at the same path (here: the same path, read from two
    working folders) would train silently on both."""
    for i in range(2):
        (tmp_path / f"host{i}").mkdir()
        (tmp_path / f"host{i}" / "data.txt").write_text(shakespeare[i * 50_000:][:50_000])
    procs, outs = _each_process(
        tmp_path, lambda i: [f"--workdir={tmp_path / 'run'}",
                             "--config.data.path=/proc/self/cwd/data.txt"],
        cwds=(tmp_path / "host0", tmp_path / "host1"))
    _refused_alike(procs, outs, (
        "process 1 was started with another config or other data than process 0: start every "
        "process with the same command, on the same data"))


@pytest.mark.parametrize("failing", [0, 1])
def test_a_process_that_fails_before_training_ends_the_other_with_its_error(tmp_path, failing):
    """A data file missing on one host: the other process waited --distributed_timeout (5
    minutes), then blamed a frozen peer, and left the new workdir holding its lock file."""
    (tmp_path / "host0").mkdir()
    (tmp_path / "host1").mkdir()
    (tmp_path / f"host{1 - failing}" / "data.txt").write_text("to be or not to be " * 2000)
    start = time.perf_counter()
    procs, outs = _each_process(
        tmp_path, lambda i: [f"--workdir={tmp_path / 'run'}", "--config.data.path=data.txt"],
        cwds=(tmp_path / "host0", tmp_path / "host1"))
    missing = f"data file not found: {tmp_path / f'host{failing}' / 'data.txt'}"
    for i, (p, (_, err)) in enumerate(zip(procs, outs, strict=True)):
        assert p.returncode == 2, err
        assert err.strip().splitlines() == [
            f"error: {missing}" if i == failing else
            f"error: process {failing} of this run failed: {missing}"]
    assert time.perf_counter() - start < 45  # not the timeout of 60 s
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("crashing", [1, 0])
def test_a_process_that_crashes_ends_the_other_with_its_error(crashing):
    """An exception nobody expected: its failure was written, then overwritten by the "done"
    of the interpreter's normal exit, and the other process waited on, told nothing; the
    coordinator that crashed then waited past --distributed_timeout in jax's own exit."""
    script = ("import sys, time\n"
              "from gpt_jax import cli, distributed\n"
              "def main():\n"
              "    me = int(sys.argv[2])\n"
              "    distributed.initialize(sys.argv[1], 2, me, timeout_s=60)\n"
              "    time.sleep(1)\n"
              f"    if me == {crashing}:\n"
              "        raise RuntimeError('boom')\n"
              "    time.sleep(50)\n"
              "cli.run(main)\n")
    address = f"127.0.0.1:{free_port()}"
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", script, address, str(i)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    try:
        outs = [p.communicate(timeout=45) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert time.perf_counter() - start < 30  # not the 50 s it would have slept
    other, crashed = procs[1 - crashing], procs[crashing]
    assert other.returncode == 2, outs[1 - crashing][1]
    assert outs[1 - crashing][1].strip().splitlines() == [
        f"error: process {crashing} of this run failed: RuntimeError: boom"]
    assert crashed.returncode == 1  # its traceback, and no line blaming another process
    assert outs[crashing][1].strip().splitlines()[-1] == "RuntimeError: boom"


def test_two_processes_of_one_device_each_keep_their_collectives_in_step(tmp_path):
    """With one device per process and chunks of 3 steps, the stop's pmax was not ordered
    after the steps' gradient means: XLA:CPU could start it first on one process only, and
    Gloo aborted that process (a size mismatch) in most runs."""
    procs, outs = _each_process(tmp_path, lambda i: [
        f"--workdir={tmp_path}", "--config.model.n_layer=1", "--config.model.n_embd=32",
        "--config.model.n_head=2", "--config.model.block_size=16", "--config.model.dropout=0.1",
        "--config.train.num_steps=30", "--config.train.eval_interval=10",
        "--config.train.checkpoint_every=10", "--config.train.steps_per_call=3",
        "--config.train.batch_size=8", "--config.train.eval_iters=3",
        "--config.train.warmup_steps=0", "--config.sample.max_new_tokens=0"],
        config=REPO / "configs" / "shakespeare_char_cpu.py")
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    assert load_run(tmp_path).step == 30


def test_a_stop_waits_for_as_few_steps_as_the_processes_agree_to_chunk(tmp_path):
    """Processes chunk alike, so each sends the steps per call that keep a call under
    train.chunk_seconds with a chunk's stop request, and all take the fewest. Each of these
    steps takes longer than chunk_seconds: a SIGTERM to process 1 after step 20 stops both
    within two steps, not after the two chunks of steps_per_call=1000 they ran before."""
    procs, outs = _each_process(tmp_path, lambda i: [
        f"--workdir={tmp_path}", "--config.train.num_steps=1000000",
        "--config.train.steps_per_call=1000", "--config.train.chunk_seconds=1e-6",
        "--config.train.checkpoint_every=1000000", "--config.train.eval_interval=1000000"],
        envs=({}, {"GPT_JAX_KILL_AT": "step:20", "GPT_JAX_KILL_SIGNAL": "TERM"}))
    steps = _terminated_steps(procs, outs)
    assert steps[0] == steps[1] and 20 <= steps[0] <= 22, steps
    assert load_run(tmp_path).step == steps[0]


def test_processes_started_with_other_process_counts_are_refused_in_one_line(tmp_path):
    """jax took process 0's --num_processes and the run trained as two processes, process
    1's --num_processes=3 ignored without a word."""
    port = free_port()
    procs = [subprocess.Popen(
        [sys.executable, "train.py", f"--config={TINY}", f"--workdir={tmp_path}",
         f"--coordinator_address=127.0.0.1:{port}", f"--num_processes={2 + i}",
         f"--process_id={i}", "--distributed_timeout=60"],
        cwd=REPO, env={**os.environ, **_devices(1)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    _refused_alike(procs, outs, "process 1 was started with --num_processes=3 and process 0 "
                                "with 2: give every process the same --num_processes")
