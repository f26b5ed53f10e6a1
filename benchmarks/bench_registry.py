"""Push and pull of a 100 MB image through a local docker-registry, next to skopeo.

    make bench            (or: .venv/bin/python benchmarks/bench_registry.py)

The image has 2,000 small files and one large file in one layer, plus a small
second layer.  Each push goes to a fresh, empty registry; each pull into a fresh
store.  skopeo does the same copies in the same run (`oci:` store -> registry,
registry -> `oci:` directory).  skopeo does not unpack layers, so our pull is
reported twice: up to the last verified blob ("fetch"), which is the fair
comparison, and including the unpack into layer directories ("+ unpack").
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox import Engine  # noqa: E402
from sandbox.registry import pull, push  # noqa: E402
from bench_images import make_tree  # noqa: E402

ROUNDS = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    def __init__(self, base: Path) -> None:
        self.dir = Path(tempfile.mkdtemp(dir=base, prefix="reg-"))
        self.port = free_port()
        (self.dir / "config.yml").write_text(
            f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {self.dir / 'data'}\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\nlog:\n  level: error\n")
        self.proc = subprocess.Popen(["docker-registry", "serve", str(self.dir / "config.yml")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        self.host = f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    if not shutil.which("docker-registry") or not shutil.which("skopeo"):
        print("needs docker-registry and skopeo (make setup installs them)")
        return
    work = Path(tempfile.mkdtemp(prefix="sbx-bench-reg-"))
    try:
        tree = work / "tree"
        tree.mkdir()
        make_tree(tree)
        tar = work / "rootfs.tar"
        subprocess.run(["tar", "-C", str(tree), "-cf", str(tar), "."], check=True)
        engine = Engine(work / "root")
        with open(tar, "rb") as f:
            engine.images.import_(f, tag="bench:latest")
        image = engine.images.get("bench:latest")
        size = sum(layer.size for layer in image.layers)
        print(f"image: {size / 1e6:.0f} MB compressed, {image.size / 1e6:.0f} MB unpacked")
        rows: dict[str, list[float]] = {k: [] for k in ("push", "skopeo push", "pull fetch",
                                                        "pull + unpack", "skopeo pull")}
        for _ in range(ROUNDS):
            reg = Registry(work)
            try:
                name = f"{reg.host}/bench/img:1"
                engine.images.tag("bench:latest", name)
                rows["push"].append(timed(lambda: push(engine.image_store, name)))
                reg2 = Registry(work)
                try:
                    rows["skopeo push"].append(timed(lambda: subprocess.run(
                        ["skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false",
                         f"oci:{engine.store.oci}:bench:latest", f"docker://{reg2.host}/bench/img:1"],
                        check=True, capture_output=True)))
                finally:
                    reg2.stop()
                other = Engine(work / "pull-root")
                marks: list[float] = []
                start = time.perf_counter()
                pull(other.image_store, name,
                     progress=lambda e: marks.append(time.perf_counter()) if e.get("status") == "Download complete" else None)
                end = time.perf_counter()
                rows["pull fetch"].append(marks[-1] - start)
                rows["pull + unpack"].append(end - start)
                shutil.rmtree(work / "pull-root")
                rows["skopeo pull"].append(timed(lambda: subprocess.run(
                    ["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false",
                     f"docker://{name}", f"oci:{work / 'sk-oci'}:img"], check=True, capture_output=True)))
                shutil.rmtree(work / "sk-oci")
                engine.images.remove(name)
            finally:
                reg.stop()
        best = {k: min(v) for k, v in rows.items()}
        print(f"\n{'step':<16}{'best of ' + str(ROUNDS):>12}")
        for k, v in best.items():
            print(f"{k:<16}{v:>11.2f}s")
        print(f"\npush vs skopeo:          {best['push'] / best['skopeo push']:.2f}x")
        print(f"pull (fetch) vs skopeo:  {best['pull fetch'] / best['skopeo pull']:.2f}x")
        print(f"pull + unpack vs skopeo: {best['pull + unpack'] / best['skopeo pull']:.2f}x (skopeo does not unpack)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
