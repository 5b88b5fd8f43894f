"""How one global batch is split over processes, local devices and micro-batches.

The global batch and its order are fixed by the config; the layout only decides who
computes which rows, so the same run gives the same numbers on any number of devices.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from gpt_jax.dataset import TRAIN_STREAM, batch_offsets
from gpt_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class BatchLayout:
    global_batch: int
    num_processes: int
    process_index: int
    local_devices: int
    grad_accum_steps: int = 1

    def __post_init__(self):
        parts = self.num_processes * self.local_devices * self.grad_accum_steps
        if self.global_batch % parts:
            raise UserError(
                f"train.batch_size ({self.global_batch}) must be divisible by processes × "
                f"devices per process × grad_accum_steps = {self.num_processes} × "
                f"{self.local_devices} × {self.grad_accum_steps} = {parts}")

    @classmethod
    def current(cls, global_batch: int, grad_accum_steps: int = 1) -> BatchLayout:
        """The layout of this process in the running jax (distributed) setup."""
        return cls(global_batch, jax.process_count(), jax.process_index(),
                   jax.local_device_count(), grad_accum_steps)

    @property
    def per_process(self) -> int:
        return self.global_batch // self.num_processes

    @property
    def micro_batch(self) -> int:
        """Rows one device computes at a time."""
        return self.per_process // (self.local_devices * self.grad_accum_steps)

    @property
    def rows(self) -> slice:
        """This process's rows of the global batch."""
        start = self.process_index * self.per_process
        return slice(start, start + self.per_process)

    def row_ids(self) -> np.ndarray:
        """The index in the global batch of every row this process computes, laid out as the
        train step takes its rows: (devices, micro-batches, micro_batch)."""
        return np.arange(self.rows.start, self.rows.stop, dtype=np.int32).reshape(
            self.local_devices, self.grad_accum_steps, self.micro_batch)

    def for_train(self, x_RxT: np.ndarray) -> np.ndarray:
        """(rows, T) → (devices, micro-batches, micro_batch, T), the train step's input."""
        return x_RxT.reshape(self.local_devices, self.grad_accum_steps, self.micro_batch, -1)

    def for_chunk(self, starts_KxR: np.ndarray) -> np.ndarray:
        """Start offsets of K steps, (K, rows) → (devices, K, micro-batches, micro_batch)."""
        K = starts_KxR.shape[0]
        starts = starts_KxR.reshape(K, self.local_devices, self.grad_accum_steps, self.micro_batch)
        return starts.swapaxes(0, 1)

    def chunk_starts(self, n_tokens: int, block_size: int, seed: int, step: int, n: int,
                     k: int) -> np.ndarray:
        """Start offsets of train steps step .. step+n-1, padded to k steps, as `for_chunk`
        lays them out: the same batches, drawn from (seed, step), as one step at a time."""
        starts_KxR = np.zeros((k, self.per_process), np.int64)  # a stream past 2^31 tokens
        for i in range(n):
            starts_KxR[i] = batch_offsets(n_tokens, block_size, self.global_batch, seed,
                                          TRAIN_STREAM, step + i)[self.rows]
        return self.for_chunk(starts_KxR)

    def for_eval(self, x_NxRxT: np.ndarray) -> np.ndarray:
        """(N batches, rows, T) → (devices, N·micro-batches, micro_batch, T)."""
        n = x_NxRxT.shape[0]
        x = x_NxRxT.reshape(n, self.local_devices, self.grad_accum_steps, self.micro_batch, -1)
        return x.swapaxes(0, 1).reshape(self.local_devices, n * self.grad_accum_steps,
                                        self.micro_batch, -1)
