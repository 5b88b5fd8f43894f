"""Starting jax.distributed: one process per host (or per GPU), all running the same command.

It must run before any other jax call. Explicit arguments suit a hand-made cluster; with none,
jax detects Cloud TPU VMs, SLURM and Open MPI by itself.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator

from gpt_jax import stop
from gpt_jax.errors import UserError


def _parse_address(address: str) -> tuple[str, int]:
    """HOST:PORT, with a host that resolves: a typo fails now, not after the timeout."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--coordinator_address must be HOST:PORT, got {address!r}")
    try:
        socket.getaddrinfo(host.strip("[]"), int(port))
    except (socket.gaierror, UnicodeError) as e:
        raise UserError(f"--coordinator_address {address}: the host {host!r} does not resolve "
                        f"({getattr(e, 'strerror', None) or e})") from None
    return host, int(port)


def _require_free_port(port: int) -> None:
    """Process 0 serves the coordinator on `port`; jax aborts the process (no Python
    exception) when it is taken, so check first."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", port))
        except OSError as e:
            raise UserError(f"process 0 cannot serve the coordinator on port {port}: "
                            f"{e.strerror}; choose another port in --coordinator_address") from None


def _wait_for_coordinator(address: str, host: str, port: int, timeout_s: float) -> None:
    """jax aborts the whole process (no Python exception) when the coordinator never answers;
    checking that its port accepts connections first turns that into one clear error."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection((host.strip("[]"), port), timeout=1.0).close()
            return
        except OSError as e:
            if time.monotonic() >= deadline:
                raise UserError(f"cannot reach the coordinator at {address} within "
                                f"{timeout_s:g} s ({e.strerror or e}): is process 0 running, "
                                f"and is the address right?") from None
            time.sleep(0.25)


@contextlib.contextmanager
def _watchdog(timeout_s: float, message: str) -> Iterator[None]:
    """Ends the process with one line if the block has not finished after `timeout_s`: when a
    peer never joins, jax's own timeout is a C++ check failure, not an exception."""
    def expire():
        print(f"error: {message}", file=sys.stderr, flush=True)
        os._exit(2)

    timer = threading.Timer(timeout_s, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def jax_timeout_s(timeout_s: float) -> int:
    """jax's own timeouts, later than ours: ours end the process with a message, jax's abort."""
    return int(timeout_s) + 60


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, auto: bool = False,
               timeout_s: float = 300) -> None:
    """Joins the processes of a multi-process run; does nothing for a single process."""
    import jax

    if not 0 < timeout_s <= 10**6:
        raise UserError(f"--distributed_timeout must be in (0, 1e6] seconds, got {timeout_s}")
    jax_timeout = jax_timeout_s(timeout_s)
    explicit = (coordinator_address, num_processes, process_id)
    if any(a is not None for a in explicit):
        if any(a is None for a in explicit):
            raise UserError("--coordinator_address, --num_processes and --process_id go "
                            "together (or pass --distributed alone to auto-detect)")
        if not 1 <= num_processes <= 2**20:
            raise UserError(f"--num_processes must be in [1, 2^20], got {num_processes}")
        if not 0 <= process_id < num_processes:
            raise UserError(f"--process_id must be in [0, {num_processes}), got {process_id}")
        host, port = _parse_address(coordinator_address)
        if process_id == 0:
            _require_free_port(port)
        else:  # process 0 starts the coordinator; the others must reach it
            _wait_for_coordinator(coordinator_address, host, port, timeout_s)
        with _watchdog(timeout_s, f"only some of the {num_processes} processes joined "
                                  f"within --distributed_timeout={timeout_s:g} s: start the "
                                  f"same command with every --process_id in 0 .. "
                                  f"{num_processes - 1}"):
            jax.distributed.initialize(coordinator_address, num_processes, process_id,
                                       initialization_timeout=jax_timeout,
                                       heartbeat_timeout_seconds=jax_timeout)
    elif auto:
        with _watchdog(timeout_s, f"the processes of the cluster did not all join within "
                                  f"--distributed_timeout={timeout_s:g} s"):
            try:
                jax.distributed.initialize(initialization_timeout=jax_timeout,
                                           heartbeat_timeout_seconds=jax_timeout)
            except (ValueError, RuntimeError) as e:
                raise UserError(f"--distributed could not detect a cluster: {e}") from None
    else:
        return
    stop.take_back_handlers()
    watch_peers(timeout_s)


ALIVE = "gpt_jax/alive/"  # + process index: a counter each process raises every second
_farewells = []  # watch_peers' farewell, for `leaving`


def leaving(wait_s: float = 2.0) -> None:
    """Tells the other processes that this one ends on purpose (a stop they all agreed on), so
    that none of them reports it as gone while finishing its own save. The coordinator then
    waits for the others to say the same: its exit ends the coordination service, which jax's
    runtime in a process still saving would report as a lost peer. Waits at most `wait_s` for
    its own word to go out (a stopped coordinator would hold the call). Not after a peer's
    failure: a call to a dead coordinator is what makes jax abort this process from C++."""
    for farewell in _farewells:
        farewell(wait_s)


def watch_peers(timeout_s: float, beat_s: float = 1.0) -> None:
    """Ends this process with one line when another process of the run shows no sign of life
    for `timeout_s`. A stopped peer (SIGSTOP, a frozen host) resets no connection, so a
    collective waits on it, until jax's missed-heartbeat abort: a C++ check failure whose
    Python callback jaxlib 0.10.2 cannot take. Instead every process raises a counter in the
    coordinator's key-value store every `beat_s` and watches the others'; a process that
    ends normally writes "done" and is no longer watched."""
    import atexit

    import jax
    from jax._src import distributed as jax_distributed

    client, me = jax_distributed.global_state.client, jax.process_index()
    peers = [p for p in range(jax.process_count()) if p != me]
    if client is None or not peers:
        return
    heard = dict.fromkeys([*peers, "coordinator"], time.monotonic())  # last sign of life
    last = {}
    ending = threading.Event()

    def beat() -> None:  # may block inside an RPC while the coordinator is stopped
        for count in itertools.count():
            if ending.is_set():  # "done" is this process's last word
                return
            try:
                client.key_value_set(f"{ALIVE}{me}", str(count), allow_overwrite=True)
            except Exception:  # the coordinator is gone or stopped: `watch` says so in time
                time.sleep(beat_s)
                continue
            heard["coordinator"] = time.monotonic()
            for p in peers:
                with contextlib.suppress(Exception):  # not written yet
                    value = client.key_value_try_get(f"{ALIVE}{p}")
                    if value == "done":
                        heard[p] = math.inf
                    elif value != last.get(p):
                        last[p], heard[p] = value, time.monotonic()
            time.sleep(beat_s)

    def watch() -> None:
        while not ending.is_set():
            time.sleep(beat_s)
            for who, at in heard.items():
                if time.monotonic() - at > timeout_s and not ending.is_set():
                    name = ("the coordinator (process 0)" if who == "coordinator"
                            else f"process {who}")
                    print(f"error: {name} of this run showed no sign of life for "
                          f"--distributed_timeout={timeout_s:g} s (stopped, frozen or "
                          f"unreachable): stopping; run the same command on every process to "
                          f"resume from the newest checkpoint", file=sys.stderr, flush=True)
                    os._exit(2)

    def done() -> None:
        ending.set()
        with contextlib.suppress(Exception):
            client.key_value_set(f"{ALIVE}{me}", "done", allow_overwrite=True)

    def others_done() -> None:
        """The coordinator's wait for every peer's "done". Not for a peer whose counter has
        not moved for `timeout_s` (gone), nor longer than jax's runtime waits for a heartbeat
        (a peer alive but stuck)."""
        deadline = time.monotonic() + jax_timeout_s(timeout_s)
        values, moved = {}, dict.fromkeys(peers, time.monotonic())
        waiting = set(peers)
        while waiting and time.monotonic() < deadline:
            for p in list(waiting):
                with contextlib.suppress(Exception):  # nothing written yet
                    value = client.key_value_try_get(f"{ALIVE}{p}")
                    if value != values.get(p):
                        values[p], moved[p] = value, time.monotonic()
                if values.get(p) == "done" or time.monotonic() - moved[p] > timeout_s:
                    waiting.discard(p)
            time.sleep(0.05)

    def farewell(wait_s: float) -> None:
        thread = threading.Thread(target=done, daemon=True)
        thread.start()
        thread.join(wait_s)
        if me == 0 and not thread.is_alive():
            others_done()

    atexit.register(done)
    _farewells.append(farewell)
    for target in (beat, watch):
        threading.Thread(target=target, daemon=True, name=f"peers_{target.__name__}").start()


def require_same_run(description: str) -> None:
    """Every process must train the same thing: a process started with another config or
    other data would otherwise train silently wrong, or crash inside a collective. Compares a
    digest of `description` (the config and what the data gave) across processes."""
    import hashlib

    import jax
    import numpy as np
    from jax.experimental import multihost_utils

    if jax.process_count() == 1:
        return
    digest = np.frombuffer(hashlib.sha256(description.encode()).digest(), np.uint8)
    digests = np.asarray(multihost_utils.process_allgather(digest))
    differ = [i for i in range(len(digests)) if not np.array_equal(digests[i], digests[0])]
    if differ:
        raise UserError(f"process {differ[0]} was started with another config or other data "
                        f"than process 0: start every process with the same command")
