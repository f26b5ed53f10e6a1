"""Networking, side by side: what the bridge costs a container start, 100 containers, a published port's throughput.

    .venv/bin/python benchmarks/bench_network.py     (or: make bench; needs root)

Measured in one run, on one busybox image bootstrapped from the host:

* warm ``Engine.run("busybox", ["true"])`` with ``--network none``, on the
  default bridge and on a user network (its name server comes up too),
  interleaved round by round, 50 rounds; ``docker run --rm`` on its bridge
  and with ``--network none`` beside them when a Docker daemon with a
  bridge answers (nothing is started for it);
* 100 detached busybox httpd containers on one bridge, each with a
  published port: the time to create and start each, first ten against
  last ten; then every one fetched from the host on its own address and
  on its published port;
* 1 GiB from the host's loopback through a published port into ``nc`` in a
  container, beside the same straight to the container's address (no NAT),
  and Docker's published port when it is there.

Nothing here asserts a time; the ratios are printed beside the goals.
"""

from __future__ import annotations

import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import busybox_store, median_ms  # noqa: E402

ROUNDS = 50
MANY = 100
GIB = 1 << 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def warm(engine) -> dict[str, float]:
    net = engine.networks.create("bench-net")
    try:
        modes = ("none", "bridge", "bench-net")
        for mode in modes:
            for _ in range(3):
                engine.run("busybox", ["true"], network_mode=mode)
        samples: dict[str, list[float]] = {m: [] for m in modes}
        for _ in range(ROUNDS):
            for mode in modes:
                t = time.perf_counter()
                r = engine.run("busybox", ["true"], network_mode=mode)
                samples[mode].append(time.perf_counter() - t)
                assert r.exit_code == 0
    finally:
        net.remove()
    return {f"warm Engine.run --network {m}": median_ms(v) for m, v in samples.items()}


def docker_available() -> bool:
    if not shutil.which("docker"):
        return False
    info = subprocess.run(["docker", "info", "--format", "{{json .}}"], capture_output=True, text=True)
    return info.returncode == 0


def docker_runs(engine, tmp: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    if not docker_available():
        return out
    if subprocess.run(["docker", "image", "inspect", "busybox"], capture_output=True).returncode:
        saved = tmp / "busybox.tar"
        with open(saved, "wb") as f:
            engine.images.save(["busybox"], f)
        subprocess.run(["docker", "load", "-i", str(saved)], capture_output=True)
    for mode in ("none", "bridge"):
        argv = ["docker", "run", "--rm", "--network", mode, "busybox", "true"]
        if subprocess.run(argv, capture_output=True).returncode:
            continue
        times = []
        for _ in range(10):
            t = time.perf_counter()
            subprocess.run(argv, capture_output=True, check=True)
            times.append(time.perf_counter() - t)
        out[f"docker run --rm --network {mode}"] = median_ms(times)
    return out


def many(engine) -> tuple[list[float], int, int]:
    """Start MANY httpd containers with a published port each; set-up times, and how many answered."""
    containers, times = [], []
    script = "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 80 -h /www"
    try:
        for _ in range(MANY):
            t = time.perf_counter()
            c = engine.containers.run("busybox", ["sh", "-c", script], detach=True, ports={"80/tcp": free_port()})
            times.append(time.perf_counter() - t)
            containers.append(c)
        direct = published = 0
        for c in containers:
            c.reload()
            ns = c.attrs["NetworkSettings"]
            host_port = ns["Ports"]["80/tcp"][0]["HostPort"]
            for url in (f"http://{ns['IPAddress']}/", f"http://127.0.0.1:{host_port}/"):
                ok = False
                for _ in range(50):
                    try:
                        with urllib.request.urlopen(url, timeout=2) as r:
                            ok = r.read() == b"ok\n"
                            break
                    except OSError:
                        time.sleep(0.05)
                if ok and "127.0.0.1" in url:
                    published += 1
                elif ok:
                    direct += 1
        return times, direct, published
    finally:
        for c in containers:
            c.remove(force=True)


def push(host: str, port: int, size: int = GIB) -> float:
    """Seconds to send ``size`` bytes to ``host:port`` (a receiver that discards them)."""
    chunk = b"\0" * (1 << 20)
    for _ in range(100):
        try:
            s = socket.create_connection((host, port), timeout=5)
            break
        except OSError:
            time.sleep(0.05)
    else:
        raise RuntimeError(f"nothing listens on {host}:{port}")
    with s:
        t = time.perf_counter()
        sent = 0
        while sent < size:
            s.sendall(chunk)
            sent += len(chunk)
        s.shutdown(socket.SHUT_WR)
        s.recv(1)
        return time.perf_counter() - t


def throughput(engine) -> dict[str, float]:
    out: dict[str, float] = {}
    port = free_port()
    for label in ("published port (DNAT from 127.0.0.1)", "the container's own address (no NAT)"):
        c = engine.containers.run("busybox", ["sh", "-c", "nc -l -p 5000 > /dev/null"], detach=True,
                                  ports={"5000/tcp": port})
        try:
            c.reload()
            host = "127.0.0.1" if label.startswith("published") else c.attrs["NetworkSettings"]["IPAddress"]
            target = port if label.startswith("published") else 5000
            seconds = push(host, target)
            out[label] = GIB / seconds / 2**20
        finally:
            c.remove(force=True)
    if docker_available():
        dport = free_port()
        cid = subprocess.run(["docker", "run", "-d", "-p", f"{dport}:5000", "busybox", "sh", "-c",
                              "nc -l -p 5000 > /dev/null"], capture_output=True, text=True)
        if cid.returncode == 0:
            try:
                out["docker's published port"] = GIB / push("127.0.0.1", dport) / 2**20
            finally:
                subprocess.run(["docker", "rm", "-f", cid.stdout.strip()], capture_output=True)
    return out


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-network-") as tmpdir:
        tmp = Path(tmpdir)
        engine, _ = busybox_store(tmp)
        try:
            results = warm(engine)
            results.update(docker_runs(engine, tmp))
            times, direct, published = many(engine)
            rates = throughput(engine)
        finally:
            from tests.integration.container_env import clean_engine
            clean_engine(engine)

    print(f"{'measure':44} {'median ms':>10}")
    for name, ms in results.items():
        print(f"{name:44} {ms:10.1f}")
    none, bridge = results["warm Engine.run --network none"], results["warm Engine.run --network bridge"]
    print(f"\nthe bridge adds {bridge - none:+.1f} ms to a warm run (goal: at most +5 ms)")
    if "docker run --rm --network bridge" in results:
        print(f"docker run --rm on its bridge / warm Engine.run on ours: "
              f"{results['docker run --rm --network bridge'] / bridge:.1f}x")
    first, last = statistics.median(times[:10]) * 1000, statistics.median(times[-10:]) * 1000
    print(f"\n{MANY} containers on one bridge, each with a published port: create+start "
          f"{first:.1f} ms (first 10) -> {last:.1f} ms (last 10), {last / first:.2f}x; "
          f"{direct}/{MANY} answered on their address, {published}/{MANY} on their published port")
    print("\n1 GiB from the host's loopback:")
    for name, mib in rates.items():
        print(f"  {name:44} {mib:8.0f} MiB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
