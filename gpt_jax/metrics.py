"""Metrics of a run: JSON lines in WORKDIR/metrics.jsonl, one object per evaluation, and the
same scalars as TensorBoard events in WORKDIR/tensorboard (tensorboardX, no TensorFlow).

Both are written synchronously by the training process, so a disk that is full or a file that
cannot be written stops the run with one line instead of failing in a background thread.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto import event_pb2
from tensorboardX.summary import scalar

from gpt_jax.errors import UserError
from gpt_jax.run_files import METRICS, TENSORBOARD, file_exists, kind_of, write_atomic


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_record(value) -> bool:
    """A dict with an int step and, for every other field, a number or null."""
    return (isinstance(value, dict) and isinstance(value.get("step"), int)
            and not isinstance(value.get("step"), bool)
            and all(v is None or _is_number(v) for k, v in value.items() if k != "step"))


def read_metrics(workdir: str | Path) -> list[dict]:
    """The records of metrics.jsonl; a line that is not a record (cut short by a killed
    process, or edited by hand) is skipped with a warning."""
    path = Path(workdir) / METRICS
    if not file_exists(path):
        return []
    try:  # bytes that are not UTF-8 spoil their line only, which is then skipped
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            record = None
        if is_record(record):
            records.append(record)
        elif line.strip():
            print(f"warning: {path} line {number} is not a metrics record; skipped",
                  file=sys.stderr)
    return records


def steady_tokens_per_s(records: list[dict]) -> float | None:
    """Tokens per second over a run's records, evaluations excluded: each interval's rate
    weighted by its time (its steps over its rate), not a plain mean of the rates, which a
    fast interval pulls above what the steps took. None where no interval was timed."""
    timed = [(r["step"] - before["step"], r["tokens_per_s"])
             for before, r in zip(records, records[1:], strict=False) if r.get("tokens_per_s")]
    steps = sum(n for n, _ in timed)
    return steps / sum(n / rate for n, rate in timed) if timed and steps else None


class MetricsWriter:
    """Owned by process 0 only."""

    def __init__(self, workdir: Path):
        self.path = workdir / METRICS
        self._tensorboard: EventsWriter | None = None
        self._tensorboard_dir = workdir / TENSORBOARD
        file_exists(self.path)  # opening a FIFO in its place would wait for a reader
        if self._tensorboard_dir.exists() and not self._tensorboard_dir.is_dir():
            raise UserError(f"{self._tensorboard_dir} is {kind_of(self._tensorboard_dir)}, not "
                            f"the folder of TensorBoard's events: move it away")
        try:  # fail now, before training, if the files cannot be written
            self._tensorboard_dir.mkdir(exist_ok=True)
            self._tensorboard = EventsWriter(str(self._tensorboard_dir / "events"))
            self.path.open("a", encoding="utf-8").close()
        except OSError as e:
            raise UserError(f"cannot write {e.filename or self.path}: {e.strerror}") from None

    def truncate_after(self, step: int) -> None:
        """Drops records past `step`: a resumed run rewrites them instead of repeating them.
        TensorBoard's events cannot be cut: a SessionLog START at step + 1 makes TensorBoard
        drop every earlier event from there on (a killed run's, past the checkpoint resumed)."""
        kept = [r for r in read_metrics(self.path.parent) if r["step"] <= step]
        write_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        start = event_pb2.Event(wall_time=time.time(), step=step + 1,
                                session_log=event_pb2.SessionLog(
                                    status=event_pb2.SessionLog.START))
        self._tensorboard_call(lambda: self._tensorboard.write_event(start))

    def write(self, record: dict) -> None:
        """One evaluation: non-finite values (no throughput yet at step 0) become null."""
        record = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                  for k, v in record.items()}
        try:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as e:
            raise UserError(f"cannot write {self.path}: {e.strerror}") from None
        self.scalars(record["step"], {k: v for k, v in record.items() if k != "step"})
        self.flush()

    def scalars(self, step: int, values: dict) -> None:
        for name, value in values.items():
            if value is not None:
                event = event_pb2.Event(wall_time=time.time(), step=step,
                                        summary=scalar(name, value))
                self._tensorboard_call(lambda e=event: self._tensorboard.write_event(e))

    def flush(self) -> None:
        self._tensorboard_call(lambda: self._tensorboard.flush())

    def _tensorboard_call(self, write) -> None:
        try:
            write()
        except OSError as e:
            raise UserError(f"cannot write the TensorBoard events in {self._tensorboard_dir}: "
                            f"{e.strerror}") from None

    def close(self) -> None:
        if self._tensorboard is not None:
            try:
                self._tensorboard.close()
            except OSError:
                pass  # closing after a failed write: the error already reached the user
            self._tensorboard = None


def keep_aside(path: Path, suffix: str) -> Path | None:
    """Renames `path` to PATH.SUFFIX (numbered if taken), so nothing is overwritten."""
    if not path.exists():
        return None
    target, n = path.with_name(f"{path.name}.{suffix}"), 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.{suffix}{n}")
    os.replace(path, target)
    return target
