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
from collections.abc import Callable, Iterator
from pathlib import Path

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


_cleanups: list[Callable[[], None]] = []  # for _force_exit, innermost last


@contextlib.contextmanager
def cleaned_up_on_forced_exit(cleanup: Callable[[], None]) -> Iterator[None]:
    """Runs `cleanup` also where a watching thread ends this process (a peer lost or failed):
    os._exit skips every `finally`, and a new run's workdir stayed, holding a lock file."""
    _cleanups.append(cleanup)
    try:
        yield
    finally:
        _cleanups.remove(cleanup)


def _force_exit(message: str) -> None:
    """One line, the cleanups, and the end of the process from any thread: the main thread may
    be held in a collective or a key-value wait that no exception reaches."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    for cleanup in reversed(_cleanups):
        with contextlib.suppress(Exception):
            cleanup()
    os._exit(2)


@contextlib.contextmanager
def _watchdog(timeout_s: float, message: str) -> Iterator[None]:
    """Ends the process with one line if the block has not finished after `timeout_s`: when a
    peer never joins, jax's own timeout is a C++ check failure, not an exception."""
    def expire():
        _force_exit(message)

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
    _timeout_s[0] = timeout_s
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
    if num_processes is not None:  # jax takes process 0's count, whatever the others say
        require_same("processes", lambda: str(num_processes), lambda p, theirs, ours: (
            f"process {p} was started with --num_processes={theirs} and process 0 with "
            f"{ours}: give every process the same --num_processes"))


ALIVE = "gpt_jax/alive/"  # + process index: a counter each process raises every second
FAILED = "failed: "  # an ALIVE value: the process ends on this error
_farewells = []  # watch_peers' farewell, for `leaving`
_failures = []  # and its word of failure, for `failing`
_peer_failures = []  # and its reading of the others', for `a_peer_failed`


def a_peer_failed(wait_s: float = 2.0) -> str | None:
    """"process P of this run failed: <its line>", where another process wrote its failure
    (within `wait_s`): a collective broken by that process's exit reaches this one before its
    watch reads the failure, and "a collective lost its peer" would name no cause."""
    for read in _peer_failures:
        return read(wait_s)
    return None


def multi_process() -> bool:
    """Whether this process watches peers of a multi-process run."""
    return bool(_failures)


def failing(message: str, wait_s: float = 2.0) -> None:
    """Tells the other processes that this one ends on an error (bad input on its host, a
    resource), so that they stop within a second with its message instead of waiting
    --distributed_timeout for a sign of life and blaming a frozen peer. Not after `leaving`:
    every process then refuses alike, and ends on its own words."""
    for fail in _failures:
        fail(message, wait_s)


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
    ends normally writes "done" and is no longer watched, and one that fails on its own error
    writes it (`failing`): the others then end at once, with its message."""
    import atexit

    import jax
    from jax._src import distributed as jax_distributed

    client, me = jax_distributed.global_state.client, jax.process_index()
    peers = [p for p in range(jax.process_count()) if p != me]
    if client is None or not peers:
        return
    # The last sign of life of each peer, and of the coordination service, which lives in
    # process 0 (whose own beat, slowed, is no sign of its own death).
    heard = dict.fromkeys([*peers, *["coordinator"] * (me != 0)], time.monotonic())
    last, failed = {}, {}  # failed: a peer's error, as it wrote it
    ending = threading.Event()
    writing = threading.Lock()  # of this process's key: a counter never follows the last word
    final = []  # this process's last word once written: "done" or its failure

    def last_word(word: str) -> None:
        """Writes "done" or a failure, once: the first said stands (an exit after a failure
        runs the atexit "done" too)."""
        ending.set()
        held = writing.acquire(timeout=2 * beat_s)  # a beat held in a stopped coordinator's RPC
        try:
            if final:
                return
            final.append(word)
            with contextlib.suppress(Exception):
                client.key_value_set(f"{ALIVE}{me}", word, allow_overwrite=True)
        finally:
            if held:
                writing.release()

    def beat() -> None:  # may block inside an RPC while the coordinator is stopped
        for count in itertools.count():
            with writing:
                if ending.is_set():  # the last word is said
                    return
                try:
                    client.key_value_set(f"{ALIVE}{me}", str(count), allow_overwrite=True)
                    reached = True
                except Exception:  # the coordinator is gone or stopped: `watch` says so
                    reached = False
            if not reached:
                time.sleep(beat_s)
                continue
            if me != 0:
                heard["coordinator"] = time.monotonic()
            for p in peers:
                with contextlib.suppress(Exception):  # not written yet
                    value = client.key_value_try_get(f"{ALIVE}{p}")
                    if value == "done":
                        heard[p] = math.inf
                    elif value.startswith(FAILED):
                        failed.setdefault(p, value[len(FAILED):])
                    elif value != last.get(p):
                        last[p], heard[p] = value, time.monotonic()
            time.sleep(beat_s)

    def until_peers_beat(bound_s: float) -> None:
        """The coordinator's wait, after writing its failure, until every peer's beat has read
        it or the peer has said its last word: the coordinator's exit ends the key-value
        store. At most `bound_s`, for a stopped peer."""
        def counters() -> dict:
            values = {}
            for p in peers:
                with contextlib.suppress(Exception):
                    values[p] = client.key_value_try_get(f"{ALIVE}{p}")
            return values

        # A beat writes its counter, then reads the others': a counter that moved since the
        # failure was written is followed by a read of it, within milliseconds; a second move
        # shows it done. A peer that read it ends at once, without a last word: a beat after
        # its first move is time enough for that read.
        seen, deadline = {p: [v] for p, v in counters().items()}, time.monotonic() + bound_s
        moved_at: dict[int, float] = {}
        while time.monotonic() < deadline:
            for p, value in counters().items():
                if value != seen.setdefault(p, [value])[-1]:
                    seen[p].append(value)
                    moved_at.setdefault(p, time.monotonic())
            if all(len(seen.get(p, ())) > 2 or str(seen.get(p, [""])[-1]) == "done"
                   or str(seen.get(p, [""])[-1]).startswith(FAILED)
                   or time.monotonic() - moved_at.get(p, math.inf) > beat_s for p in peers):
                return  # (or the peer has said its last word)
            time.sleep(0.05)

    def watch() -> None:
        while not ending.is_set():
            time.sleep(beat_s)
            for p, why in list(failed.items()):
                if not ending.is_set():
                    if me == 0 and len(peers) > 1:  # the other peers must read it first
                        until_peers_beat(5 * beat_s)
                    if not ending.is_set():
                        _force_exit(f"process {p} of this run failed: {why}")
            for who, at in heard.items():
                if time.monotonic() - at > timeout_s and not ending.is_set():
                    # The coordination service lives in process 0: one name for both
                    # clocks, whichever of them runs out first.
                    name = f"process {0 if who == 'coordinator' else who}"
                    _force_exit(f"{name} of this run showed no sign of life for "
                                f"--distributed_timeout={timeout_s:g} s (stopped, frozen or "
                                f"unreachable): stopping; run the same command on every "
                                f"process to resume from the newest checkpoint")

    def done() -> None:
        last_word("done")

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
                if values.get(p) == "done" or str(values.get(p)).startswith(FAILED) \
                        or time.monotonic() - moved[p] > timeout_s:
                    waiting.discard(p)
            time.sleep(0.05)

    def farewell(wait_s: float) -> None:
        thread = threading.Thread(target=done, daemon=True)
        thread.start()
        thread.join(wait_s)
        if me == 0 and not thread.is_alive():
            others_done()

    def fail(message: str, wait_s: float) -> None:
        if ending.is_set():  # said "done" already (leaving): every process refuses alike
            return
        try:
            thread = threading.Thread(target=last_word, args=(FAILED + message,), daemon=True)
            thread.start()
        except RuntimeError:  # no thread can start (out of memory): its line matters more
            return
        thread.join(wait_s)
        if me == 0:
            until_peers_beat(5 * beat_s)

    def read_failures(wait_s: float) -> str | None:
        deadline = time.monotonic() + wait_s
        while True:
            for p, why in list(failed.items()):  # read by a beat, maybe before the store went
                return f"process {p} of this run failed: {why}"
            for p in peers:
                try:
                    value = client.key_value_try_get(f"{ALIVE}{p}")
                except Exception as e:  # noqa: BLE001 (jaxlib's own error types)
                    if "NOT_FOUND" in str(e):  # nothing written yet
                        continue
                    return None  # the store is gone: nothing more can be read
                if value.startswith(FAILED):
                    return f"process {p} of this run failed: {value[len(FAILED):]}"
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.1)

    atexit.register(done)
    _farewells.append(farewell)
    _failures.append(fail)
    _peer_failures.append(read_failures)
    for target in (beat, watch):
        threading.Thread(target=target, daemon=True, name=f"peers_{target.__name__}").start()


SAME = "gpt_jax/same/"  # + what is compared + "/" + process index: each process's value
_timeout_s = [300.0]  # --distributed_timeout, as initialize was given it


def require_same(what: str, value: Callable[[], str],
                 refusal: Callable[[int, str, str], str]) -> None:
    """Refuses the run unless every process's `value()` equals process 0's; `refusal(p,
    theirs, ours)` says why for the first process p that differs. The others compute theirs
    after process 0 has published its own (so they can read what it wrote). Through the
    coordinator's key-value store, not a collective: a collective needs as many devices on
    every process, which is one of the things compared."""
    import jax
    from jax._src import distributed as jax_distributed

    client = jax_distributed.global_state.client
    if client is None or jax.process_count() == 1:
        return
    me, key = jax.process_index(), f"{SAME}{what}/"
    timeout_ms = jax_timeout_s(_timeout_s[0]) * 1000

    def of(p: int) -> str:
        try:
            return client.blocking_key_value_get(f"{key}{p}", timeout_ms)
        except Exception:  # noqa: BLE001 (jaxlib's own error types)
            raise UserError(f"process {p} did not reach the check of the run's {what} within "
                            f"{timeout_ms // 1000} s") from None

    if me == 0:
        client.key_value_set(f"{key}0", value(), allow_overwrite=True)
    ours = of(0)
    if me != 0:
        client.key_value_set(f"{key}{me}", value(), allow_overwrite=True)
    for p in range(1, jax.process_count()):
        theirs = of(p)
        if theirs != ours:  # every process sees the same values and refuses alike:
            leaving()       # none is to report another's exit as a lost peer
            raise UserError(refusal(p, theirs, ours))


def tree_digest(tree) -> str:
    """sha256 of every array of a pytree (its parameters, say), in leaf order."""
    import hashlib

    import jax
    import numpy as np

    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(jax.device_get(tree)):
        digest.update(np.ascontiguousarray(leaf).tobytes())
    return digest.hexdigest()


def require_same_run(description: str) -> None:
    """Every process must train the same thing on as many devices: a process started with
    another config or other data would otherwise train silently wrong, or crash inside a
    collective. Compares a digest of `description` (the config and what the data gave)."""
    import hashlib

    import jax

    require_same("devices", lambda: str(jax.local_device_count()), lambda p, theirs, ours: (
        f"process {p} has {theirs} local device(s) and process 0 has {ours}: every process "
        f"must see as many (CUDA_VISIBLE_DEVICES, or the hosts' accelerators)"))
    require_same("run", lambda: hashlib.sha256(description.encode()).hexdigest(),
                 lambda p, *_: (f"process {p} was started with another config or other data "
                                f"than process 0: start every process with the same command, "
                                f"on the same data"))


def require_shared_workdir(workdir: Path, lock_name: str) -> None:
    """Every process must see the one workdir that process 0 locked: orbax writes each
    checkpoint from all processes into it, and a process with a folder of its own would save
    into (and resume from) another run. Process 0's lock file holds its pid: each process
    reads it back."""
    def lock_text() -> str:
        try:
            return (workdir / lock_name).read_text(errors="replace")
        except OSError as e:
            return f"<{e.strerror}>"

    require_same("workdir", lock_text, lambda p, *_: (
        f"process {p} does not see the workdir that process 0 writes (its folder holds no "
        f"{lock_name} of process 0's): give every process one folder they all share, on a "
        f"network file system"))
