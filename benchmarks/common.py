"""Helpers the benchmark scripts share (not a benchmark itself: ``make bench`` runs ``bench_*.py``)."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any


def median_ms(samples: list[float]) -> float:
    """The median of samples in seconds, in milliseconds."""
    return statistics.median(samples) * 1000


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    """Seconds one run of ``argv`` takes, its output discarded; a failure raises."""
    t = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t


def busybox_store(tmp: Path) -> tuple[Any, dict[str, str]]:
    """A private store below ``tmp`` with busybox bootstrapped from the host; the engine and
    the environment for a ``sandbox`` command on it (.pyc caching on: a cold command that
    recompiles every module measures the compiler)."""
    from sandbox import Engine
    root = tmp / "root"
    engine = Engine(root)
    engine.images.bootstrap("busybox")
    env = dict(os.environ, SANDBOX_ROOT=str(root))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return engine, env
