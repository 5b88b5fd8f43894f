"""The tests' fork server (fork_server.py) stands in for a fresh interpreter: each child has its
own jax backend and device count, arguments, environment, working folder, output, exit status
and death by signal, and one that overruns its timeout is killed."""

import os
import subprocess

import pytest

from conftest import _fork_server, devices_env, run_python

SCRIPT = """
import os, signal, sys
import jax
print(jax.device_count(), sys.argv[1:], __name__, os.getcwd(), os.environ["WORD"])
print(os.getppid(), file=sys.stderr)
if sys.argv[1] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
if sys.argv[1] == "hang":
    signal.pause()
sys.exit(int(sys.argv[1]))
"""


@pytest.mark.parametrize("devices", [8, 2])
def test_a_child_has_its_own_devices_arguments_folder_output_and_exit_status(tmp_path, devices):
    (tmp_path / "script.py").write_text(SCRIPT)
    result = run_python([str(tmp_path / "script.py"), "3"], cwd=tmp_path,
                        env={**devices_env(devices), "WORD": f"w{devices}"})
    assert result.returncode == 3
    assert result.stdout == f"{devices} ['3'] __main__ {tmp_path} w{devices}\n"
    forked = os.environ.get("GPT_JAX_TESTS_FORK", "1") != "0"
    parent = _fork_server().process.pid if forked else os.getpid()
    assert result.stderr == f"{parent}\n"


def test_a_child_killed_by_a_signal_or_past_its_timeout(tmp_path):
    (tmp_path / "script.py").write_text(SCRIPT)
    killed = run_python([str(tmp_path / "script.py"), "kill"], env={"WORD": "k"})
    assert killed.returncode == -9
    with pytest.raises(subprocess.TimeoutExpired):
        run_python([str(tmp_path / "script.py"), "hang"], env={"WORD": "h"}, timeout=2)
    after = run_python([str(tmp_path / "script.py"), "0"], env={"WORD": "a"})
    assert after.returncode == 0 and after.stdout.endswith(" a\n")  # the server goes on
