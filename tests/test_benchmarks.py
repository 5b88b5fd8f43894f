"""What the benchmarks compute from their timings (their commands' bad input: test_errors.py)."""

import sys
from types import SimpleNamespace

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import bench  # noqa: E402


def test_mfu_is_against_the_peak_of_every_device_the_step_runs_on():
    """Against one device's peak, 8 GPUs read 8 times their MFU (up to 400%)."""
    gpu, cpu = SimpleNamespace(platform="gpu"), SimpleNamespace(platform="cpu")
    assert bench.model_flops_utilization(1e6, 1e6, 1e12, [gpu] * 8) == 1e12 / 8e12
    assert bench.model_flops_utilization(1e6, 1e6, 1e12, [gpu]) == 1.0
    assert bench.model_flops_utilization(1e6, 1e6, 1e12, [cpu] * 8) == 1.0  # one machine
    assert bench.model_flops_utilization(None, 1e6, 1e12, [gpu]) is None
