"""The Docker Engine API daemon beside dockerd: the same clients, the same busybox, as ratios.

    .venv/bin/python benchmarks/bench_api.py     (or: make bench; needs root)

Measured in one run, with ``sandbox daemon`` on a private store and, when
Docker is installed, a private ``dockerd`` (no bridge, no iptables rules,
started and stopped here; both get our busybox, saved from our store):

* Debian's docker CLI, ``docker run --rm --network none busybox true``, 10 runs each;
* docker-py ``containers.run("busybox", "true", remove=True, network_mode="none")``, 10 each;
* ``docker-compose up -d`` + ``down`` of a one-service app, 3 each;
* 20 clients at once (threads, one docker-py client each), each doing
  create/start/wait/remove of ``true`` ``BENCH_CYCLES`` times (default 50):
  throughput and p99 latency; the daemon's RSS before and after (no growth
  per request is the goal).

Goal: our daemon at most 0.5x dockerd's time for the CLI and docker-py runs.
Nothing here asserts a time.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import busybox_store, docker_daemon, median_ms  # noqa: E402

CLIENTS = 20
CYCLES = int(os.environ.get("BENCH_CYCLES", "50"))
DOCKER = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def cli_runs(env: dict[str, str], n: int = 10) -> float:
    argv = [DOCKER, "run", "--rm", "--network", "none", "busybox", "true"]
    subprocess.run(argv, env=env, check=True, capture_output=True)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(argv, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return median_ms(times)


def py_runs(host: str, n: int = 10) -> float:
    import docker
    client = docker.DockerClient(base_url=host, version="1.41")
    client.containers.run("busybox", "true", remove=True, network_mode="none")
    times = []
    for _ in range(n):
        t = time.perf_counter()
        client.containers.run("busybox", "true", remove=True, network_mode="none")
        times.append(time.perf_counter() - t)
    client.close()
    return median_ms(times)


def compose_cycle(env: dict[str, str], work: Path, n: int = 3) -> float | None:
    if shutil.which("docker-compose") is None:
        return None
    (work / "docker-compose.yml").write_text(
        'version: "3.8"\nservices:\n  sleeper:\n    image: busybox\n    command: sleep 300\n'
        "    network_mode: none\n")
    env = dict(env, PATH="/usr/bin:" + env.get("PATH", ""))
    times = []
    for _ in range(n):
        t = time.perf_counter()
        for args in (["up", "-d"], ["down", "-t", "1"]):
            p = subprocess.run(["docker-compose", "-p", "bench", *args], cwd=work, env=env, capture_output=True)
            if p.returncode:
                return None
        times.append(time.perf_counter() - t)
    return median_ms(times)


def crowd(host: str) -> tuple[float, float, int]:
    """CLIENTS threads x CYCLES create/start/wait/remove; (containers per second, p99 ms, errors)."""
    import docker
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def worker() -> None:
        client = docker.DockerClient(base_url=host, version="1.41", timeout=300)
        for _ in range(CYCLES):
            t = time.perf_counter()
            try:
                c = client.containers.create("busybox", "true", network_mode="none")
                c.start()
                c.wait()
                c.remove()
            except Exception:  # noqa: BLE001 - counted and reported
                with lock:
                    errors[0] += 1
                continue
            with lock:
                latencies.append(time.perf_counter() - t)
        client.close()

    threads = [threading.Thread(target=worker) for _ in range(CLIENTS)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    p99 = statistics.quantiles(latencies, n=100)[98] * 1000 if len(latencies) > 2 else 0.0
    return len(latencies) / wall, p99, errors[0]


def measure(label: str, host: str, env: dict[str, str], pid: int, work: Path, results: dict[str, dict[str, float]]
            ) -> None:
    r = results.setdefault(label, {})
    r["docker run --rm (CLI)"] = cli_runs(env)
    r["docker-py containers.run"] = py_runs(host)
    c = compose_cycle(env, work)
    if c is not None:
        r["docker-compose up -d + down"] = c
    before = rss(pid)
    rate, p99, errors = crowd(host)
    r[f"{CLIENTS}x{CYCLES} cycles: containers/s"] = rate
    r[f"{CLIENTS}x{CYCLES} cycles: p99 ms"] = p99
    r["errors"] = errors
    r["daemon RSS MiB before"] = before / 2**20
    r["daemon RSS MiB after"] = rss(pid) / 2**20


def main() -> int:
    try:
        import docker  # noqa: F401
    except ImportError:
        print("bench_api: docker-py is not installed in the venv (it is a dev dependency)")
        return 0
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmpdir:
        tmp = Path(tmpdir)
        engine, env = busybox_store(tmp)
        sock = tmp / "api.sock"
        log = open(tmp / "daemon.log", "wb")
        daemon = subprocess.Popen([sys.executable, "-m", "sandbox", "daemon", "-H", f"unix://{sock}"],
                                  env=env, stdout=log, stderr=log)
        try:
            while not sock.exists():
                time.sleep(0.05)
            host = f"unix://{sock}"
            ours = dict(env, DOCKER_HOST=host)
            measure("sandbox daemon", host, ours, daemon.pid, tmp, results)
            saved = tmp / "busybox.tar"
            with open(saved, "wb") as f:
                engine.images.save(["busybox"], f)
            with docker_daemon() as denv:
                if denv is not None:
                    subprocess.run([DOCKER, "load", "-i", str(saved)], env=denv, capture_output=True)
                    pid_file = Path(denv["DOCKER_HOST"].replace("unix://", "")).with_name("d.pid")
                    dpid = int(pid_file.read_text()) if pid_file.exists() else 0
                    (tmp / "d").mkdir()
                    measure("dockerd", denv["DOCKER_HOST"], denv, dpid, tmp / "d", results)
        finally:
            daemon.terminate()
            daemon.wait(10)
            log.close()
            from tests.integration.container_env import clean_engine
            clean_engine(engine)

    rows = list(next(iter(results.values())))
    print(f"{'measure':40} " + " ".join(f"{k:>16}" for k in results))
    for row in rows:
        print(f"{row:40} " + " ".join(f"{results[k].get(row, float('nan')):16.1f}" for k in results))
    if "dockerd" in results:
        ours, theirs = results["sandbox daemon"], results["dockerd"]
        for row in ("docker run --rm (CLI)", "docker-py containers.run", "docker-compose up -d + down"):
            if row in ours and row in theirs:
                print(f"{row}: ours / dockerd = {ours[row] / theirs[row]:.2f}x (goal for the first two: <= 0.5x)")
        key = f"{CLIENTS}x{CYCLES} cycles: containers/s"
        print(f"throughput: {ours[key]:.1f} vs {theirs[key]:.1f} containers/s ({ours[key] / theirs[key]:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
