"""Helpers the benchmark scripts share (not a benchmark itself: ``make bench`` runs ``bench_*.py``)."""

from __future__ import annotations

import statistics
import subprocess
import time


def median_ms(samples: list[float]) -> float:
    """The median of samples in seconds, in milliseconds."""
    return statistics.median(samples) * 1000


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    """Seconds one run of ``argv`` takes, its output discarded; a failure raises."""
    t = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t
