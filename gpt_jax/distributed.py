"""Starting jax.distributed: one process per host (or per GPU), all running the same command.

It must run before any other jax call. Explicit arguments suit a hand-made cluster; with none,
jax detects Cloud TPU VMs, SLURM and Open MPI by itself.
"""

from __future__ import annotations

import socket
import time

from gpt_jax.errors import UserError


def _wait_for_coordinator(address: str, timeout_s: float) -> None:
    """jax aborts the whole process (no Python exception) when the coordinator never answers;
    checking that its port accepts connections first turns that into one clear error."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--coordinator_address must be HOST:PORT, got {address!r}")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=1.0).close()
            return
        except OSError as e:
            if time.monotonic() >= deadline:
                raise UserError(f"cannot reach the coordinator at {address} within "
                                f"{timeout_s:g} s ({e.strerror or e}): is process 0 running, "
                                f"and is the address right?") from None
            time.sleep(0.25)


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, auto: bool = False,
               timeout_s: float = 300) -> None:
    """Joins the processes of a multi-process run; does nothing for a single process."""
    import jax

    explicit = (coordinator_address, num_processes, process_id)
    if any(a is not None for a in explicit):
        if any(a is None for a in explicit):
            raise UserError("--coordinator_address, --num_processes and --process_id go "
                            "together (or pass --distributed alone to auto-detect)")
        if not 0 <= process_id < num_processes:
            raise UserError(f"--process_id must be in [0, {num_processes}), got {process_id}")
        if process_id != 0:  # process 0 starts the coordinator; the others must reach it
            _wait_for_coordinator(coordinator_address, timeout_s)
        jax.distributed.initialize(coordinator_address, num_processes, process_id,
                                   initialization_timeout=int(timeout_s))
    elif auto:
        try:
            jax.distributed.initialize(initialization_timeout=int(timeout_s))
        except (ValueError, RuntimeError) as e:
            raise UserError(f"--distributed could not detect a cluster: {e}") from None
