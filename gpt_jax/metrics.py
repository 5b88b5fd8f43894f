"""Metrics as JSON lines in WORKDIR/metrics.jsonl, one object per evaluation."""

from __future__ import annotations

import json
from pathlib import Path

from gpt_jax.run_dir import METRICS


class MetricsWriter:
    """Appends records; only the process that writes (process 0) should own one."""

    def __init__(self, workdir: Path):
        self.path = workdir / METRICS

    def write(self, record: dict) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def truncate_after(self, step: int) -> None:
        """Drops records past `step`: a resumed run rewrites them instead of repeating them."""
        if not self.path.exists():
            return
        kept = [r for r in read_metrics(self.path.parent) if r["step"] <= step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")


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
