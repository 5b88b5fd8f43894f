"""Metrics of a run: JSON lines in WORKDIR/metrics.jsonl, one object per evaluation, and the
same scalars as TensorBoard events in WORKDIR/tensorboard (tensorboardX, no TensorFlow)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from tensorboardX import SummaryWriter

from gpt_jax.run_dir import METRICS

TENSORBOARD = "tensorboard"


def read_metrics(workdir: str | Path) -> list[dict]:
    path = Path(workdir) / METRICS
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:  # a line cut short by a killed process
            continue
    return records


class MetricsWriter:
    """Owned by process 0 only."""

    def __init__(self, workdir: Path):
        self.path = workdir / METRICS
        self.tensorboard = SummaryWriter(str(workdir / TENSORBOARD), flush_secs=10)

    def truncate_after(self, step: int) -> None:
        """Drops records past `step`: a resumed run rewrites them instead of repeating them."""
        if self.path.exists():
            kept = [r for r in read_metrics(self.path.parent) if r["step"] <= step]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")

    def write(self, record: dict) -> None:
        """One evaluation: non-finite values (no throughput yet at step 0) become null."""
        record = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                  for k, v in record.items()}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        self.scalars(record["step"], {k: v for k, v in record.items() if k != "step"})

    def scalars(self, step: int, values: dict) -> None:
        for name, value in values.items():
            if value is not None:
                self.tensorboard.add_scalar(name, value, step)

    def close(self) -> None:
        self.tensorboard.close()
