"""The benchmarks run (smoke runs at toy sizes, no timing asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_bench_train_runs_the_default_step() -> None:
    args = ["--sizes", "32", "--images", "12", "--batch", "4", "--steps", "1", "--threads", "1"]
    command = [sys.executable, str(BENCHMARKS / "bench_train.py"), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "32x32: step" in result.stdout and "memory part" in result.stdout


def test_bench_lineart_prints_time_and_peak_memory() -> None:
    command = [sys.executable, str(BENCHMARKS / "bench_lineart.py"), "--sizes", "64", "--repeats", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("64x64: ") and "peak memory growth" in result.stdout
