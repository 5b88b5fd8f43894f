"""A fork server for the tests' subprocesses: one interpreter per test worker imports jax, flax,
optax and orbax once (0.8 s on a Xeon, 1.7 s on an EPYC, which each process a test starts would
pay), then forks a child for each `python SCRIPT ...` or `python -m MODULE ...` a test runs.
The child is a process of its own, as a fresh interpreter would be: its own jax backend (jax
starts none on import; XLA reads XLA_FLAGS, device count included, when the child starts one),
environment, working folder, stdout, stderr, exit status and signals, and Python's normal exit
(atexit, thread joins). What a fork cannot give, a fresh interpreter does (`forkable` says
when).

Run as `python fork_server.py FD`: requests and replies are JSON lines on the socket FD.
"""

import importlib
import json
import os
import runpy
import select
import signal
import socket
import subprocess
import sys
import traceback
from pathlib import Path

# What every command imports (train.py, gpt_jax.sample, ...), never the commands themselves:
# runpy would run a second copy of a module already imported (and warn on stderr).
PRELOAD = ("numpy", "jax", "jax.numpy", "flax.linen", "optax", "orbax.checkpoint",
           "ml_collections", "absl.flags", "tensorboardX", "matplotlib", "gpt_jax.trainer",
           "gpt_jax.restore")
# Read when an interpreter starts or a module is imported, so a child could not change them.
FIXED_AT_START = ("PYTHON", "JAX_", "LD_", "MALLOC_", "OMP_", "OPENBLAS_")


def forkable(args: list[str], env: dict, server_env: dict) -> bool:
    """A script or `-m module`, with what is read at start-up the same as the server's."""
    if not args or (args[0].startswith("-") and args[0] != "-m"):
        return False
    names = {k for k in (*env, *server_env) if k.startswith(FIXED_AT_START)}
    return all(env.get(k) == server_env.get(k) for k in names)


def _child(request: dict) -> None:
    """Becomes the process `python ARGS` would have been; leaves through SystemExit, so that the
    interpreter ends as any does."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, path, flags in ((0, os.devnull, os.O_RDONLY),
                            (1, request["stdout"], os.O_WRONLY | os.O_TRUNC),
                            (2, request["stderr"], os.O_WRONLY | os.O_TRUNC)):
        opened = os.open(path, flags)
        os.dup2(opened, fd)
        os.close(opened)
    args = request["args"]
    try:
        if args[0] == "-m":
            sys.argv = ["-m", *args[2:]]
            sys.path[0] = os.getcwd()
            sys.modules.pop(args[1], None)  # imported by a preloaded one: run as if it were not
            runpy.run_module(args[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = list(args)
            sys.path[0] = str(Path(args[0]).resolve().parent)
            runpy.run_path(args[0], run_name="__main__")
        code = 0
    except SystemExit as e:
        code = e.code
    except BaseException:  # noqa: BLE001 (as the interpreter reports an uncaught exception)
        traceback.print_exc()
        code = 1
    raise SystemExit(code)


def serve(fd: int) -> None:
    for name in PRELOAD:
        importlib.import_module(name)
    channel = socket.socket(fileno=fd)
    lines = channel.makefile("r", encoding="utf-8")
    for line in lines:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            lines.close()
            channel.close()
            _child(request)
        channel.sendall((json.dumps({"pid": pid}) + "\n").encode())
        _, status = os.waitpid(pid, 0)
        channel.sendall((json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")
                        .encode())


class ForkServer:
    """The test side: starts the server with this process's environment, sends it requests."""

    def __init__(self, cwd: Path):
        ours, theirs = socket.socketpair()
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), str(theirs.fileno())],
            pass_fds=[theirs.fileno()], cwd=cwd, env=self.env, stdin=subprocess.DEVNULL)
        theirs.close()
        self.channel = ours
        self.received = b""

    def _reply(self, timeout: float | None) -> dict:
        while b"\n" not in self.received:
            if not select.select([self.channel], [], [], timeout)[0]:
                raise TimeoutError
            chunk = self.channel.recv(4096)
            if not chunk:
                raise RuntimeError(f"the fork server ended ({self.process.poll()})")
            self.received += chunk
        line, self.received = self.received.split(b"\n", 1)
        return json.loads(line)

    def run(self, args: list[str], env: dict, cwd: Path, timeout: float, out: Path,
            err: Path) -> int:
        """The exit status of `python ARGS`, its stdout and stderr written to out and err."""
        out.touch()
        err.touch()
        request = {"args": args, "env": env, "cwd": str(cwd), "stdout": str(out),
                   "stderr": str(err)}
        self.channel.sendall((json.dumps(request) + "\n").encode())
        pid = self._reply(None)["pid"]
        try:
            return self._reply(timeout)["returncode"]
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
            self._reply(None)
            raise subprocess.TimeoutExpired([sys.executable, *args], timeout) from None

    def close(self) -> None:
        self.channel.close()
        self.process.wait(timeout=10)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
