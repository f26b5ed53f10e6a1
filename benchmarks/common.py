"""Helpers the benchmark scripts share (not a benchmark itself: ``make bench`` runs ``bench_*.py``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from collections.abc import Iterator


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


def best(samples: list[float]) -> float:
    """The fastest of several runs: other work on the machine only ever adds time."""
    return min(samples)


def _docker_answers(env: dict[str, str]) -> bool:
    try:
        return subprocess.run(["docker", "info"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=env, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextlib.contextmanager
def docker_daemon() -> Iterator[dict[str, str] | None]:
    """The environment for ``docker`` commands, or None when no Docker daemon can be had.

    A daemon that already answers (``DOCKER_HOST`` or the default socket) is used
    as it is, and left running.  Otherwise, as root with ``dockerd`` installed, a
    private one is started in a temporary directory (no bridge, no iptables, its
    own socket, data and exec roots) and stopped by its PID at the end; its
    mounts and directories are removed, and so are the two things dockerd 20.10
    makes outside them when they were not there before (``/etc/docker/key.json``
    and an empty ``/run/docker/plugins``).  Nothing is sent anywhere but the
    loopback registry a benchmark names.
    """
    if not shutil.which("docker"):
        yield None
        return
    env = dict(os.environ)
    if _docker_answers(env):
        yield env
        return
    if not shutil.which("dockerd") or os.geteuid() != 0:
        yield None
        return
    base = Path(tempfile.mkdtemp(prefix="sbx-dk-", dir="/tmp"))  # short: containerd's socket lives below
    leftovers = [p for p in ("/etc/docker/key.json", "/run/docker/plugins", "/run/docker", "/etc/docker")
                 if not os.path.lexists(p)]
    sock = base / "d.sock"
    argv = ["dockerd", "--data-root", str(base / "data"), "--exec-root", str(base / "x"),
            "-H", f"unix://{sock}", "--pidfile", str(base / "d.pid"), "--bridge", "none",
            "--iptables=false", "--default-ulimit", "nofile=1024:1024"]
    with open(base / "dockerd.log", "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    env["DOCKER_HOST"] = f"unix://{sock}"
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline and not _docker_answers(env):
            time.sleep(0.3)
        yield env if proc.poll() is None and _docker_answers(env) else None
    finally:
        _stop_dockerd(proc, base, leftovers)


def _stop_dockerd(proc: subprocess.Popen[bytes], base: Path, leftovers: list[str]) -> None:
    """SIGTERM to our dockerd (it stops its containerd), SIGKILL if it hangs, then tidy up."""
    from sandbox.image.store import remove_tree  # detaches mounts below before deleting
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pid in _pids_using(base):  # a containerd or shim of ours that outlived dockerd
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    remove_tree(base)
    for path in leftovers:  # a file, then directories from the deepest, each only if empty
        with contextlib.suppress(OSError):
            if os.path.isdir(path):
                os.rmdir(path)
            else:
                os.unlink(path)


def _pids_using(base: Path) -> list[int]:
    """Processes whose command line names ``base`` (only ever ones this helper started)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if str(base).encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
    return found


def goal(name: str, ratio: float | None, limit: float, detail: str = "") -> None:
    """Print one ratio beside its goal (``ratio <= limit`` is met) and record it for ``make bench``.

    ``ratio`` is ours over the reference, measured in the same run; None means the
    reference could not be had (a tool not installed, no Docker daemon), which is
    reported as skipped, never as met.  When ``BENCH_RESULTS`` names a file, the
    line is appended to it as JSON so ``benchmarks/summary.py`` can print every
    goal of a ``make bench`` run in one table at the end.  Nothing is asserted.
    """
    import json
    if ratio is None:
        verdict = "skipped"
        shown = "   n/a"
    else:
        verdict = "met" if ratio <= limit else "NOT met"
        shown = f"{ratio:6.2f}x"
    line = f"GOAL {name:<52} {shown}  (goal <= {limit:.2f}x)  {verdict}"
    print(line + (f"  [{detail}]" if detail else ""), flush=True)
    path = os.environ.get("BENCH_RESULTS")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"name": name, "ratio": ratio, "limit": limit, "verdict": verdict,
                                "detail": detail}) + "\n")
