"""Push and pull of a 100 MB image through a local docker-registry, next to skopeo, tar and Docker.

    make bench            (or: .venv/bin/python benchmarks/bench_registry.py)

The image is one layer of 2,000 small files and one large file (45 MB
compressed).  Each push goes to a fresh, empty registry; each pull into a fresh
store.  In the same rounds, interleaved so that other load on the machine
falls on both sides alike:

* skopeo does the same copies (``oci:`` store -> registry, registry -> ``oci:``
  directory).  skopeo does not unpack layers, so our pull is reported twice:
  up to the last verified blob ("fetch"), the fair comparison with skopeo, and
  including the unpack into layer directories ("+ unpack");
* ``tar -xzf`` of the same layer blobs into fresh directories, once before and
  once after our pull: what unpacking costs at the least (goal: pull + unpack
  within 1.3x of it);
* ``docker pull`` of the same image from the same registry, when a Docker
  daemon can be had (see ``common.docker_daemon``; goal: at most Docker's time);
* when python-isal is installed, the same pull once more with zlib's inflate
  ("pull (zlib)"): the code before isal, in the same rounds, the two taking
  turns at going first.

The goals are judged on the medians of ``ROUNDS`` rounds (``BENCH_ROUNDS``).  Each
timed pull, untar and ``docker pull`` starts on a settled disk
(``bench_images.settle_disk``: ext4 without a journal makes creates right after a
big delete slow, which made the ratios swing between runs).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from collections.abc import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox import Engine  # noqa: E402
from sandbox.image import fsutil, streams  # noqa: E402
from sandbox.registry import pull, push  # noqa: E402
from bench_images import make_tree, settle_disk  # noqa: E402
from common import best, docker_daemon, goal  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))


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


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(*argv: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(argv, check=True, capture_output=True, env=env)


def untar_layers(blobs: list[Path], work: Path) -> float:
    """``tar -xzf`` of each layer blob into a fresh directory, one after the other, as unpack does.

    The directories sit under a ``+T`` parent, as our layer directories do
    (``fsutil.spread_subdirs``), so both sides get the same inode placement.
    """
    parent = work / "untar"
    parent.mkdir(exist_ok=True)
    fsutil.spread_subdirs(parent)
    targets = [parent / f"untar-{i}" for i in range(len(blobs))]
    for target in targets:
        target.mkdir()
    settle_disk(*blobs)
    start = time.perf_counter()
    for blob, target in zip(blobs, targets):
        run("tar", "-C", str(target), "-xzf", str(blob))
    took = time.perf_counter() - start
    for target in targets:
        shutil.rmtree(target)
    return took


@contextlib.contextmanager
def zlib_inflate() -> Iterator[None]:
    """Unpack with zlib (gzip.GzipFile) instead of ISA-L: the code before isal, in the same run."""
    saved = streams._isal_gzip
    streams._isal_gzip = lambda: None  # type: ignore[assignment]
    try:
        yield
    finally:
        streams._isal_gzip = saved


def one_round(engine: Engine, work: Path, docker: dict[str, str] | None, rows: dict[str, list[float]]) -> None:
    reg = Registry(work)
    try:
        name = f"{reg.host}/bench/img:1"
        engine.images.tag("bench:latest", name)
        rows["push"].append(timed(lambda: push(engine.image_store, name)))
        reg2 = Registry(work)
        try:
            rows["skopeo push"].append(timed(lambda: run(
                "skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false",
                f"oci:{engine.store.oci}:bench:latest", f"docker://{reg2.host}/bench/img:1")))
        finally:
            reg2.stop()
        # tar before and after our pull: the shared file system's state shifts within a round
        blobs = [engine.store.blob_path(layer.digest) for layer in engine.images.get(name).layers]
        rows["tar -xzf"].append(untar_layers(blobs, work))
        # With python-isal, the pull runs twice, once with zlib's inflate, in turns of which goes
        # first (the slot right after a tar -xzf finds the disk busier on ext4).
        kinds = ["isal", "zlib"] if streams._isal_gzip() is not None else ["isal"]
        if len(rows["pull + unpack"]) % 2:
            kinds.reverse()
        for kind in kinds:
            other = Engine(work / "pull-root")
            marks: list[float] = []

            def mark(event: dict[str, Any], marks: list[float] = marks) -> None:
                if event.get("status") == "Download complete":
                    marks.append(time.perf_counter())
            settle_disk(reg.dir)
            with zlib_inflate() if kind == "zlib" else contextlib.nullcontext():
                start = time.perf_counter()
                pulled = pull(other.image_store, name, progress=mark)
                end = time.perf_counter()
            rows["pull + unpack" if kind == "isal" else "pull (zlib)"].append(end - start)
            if kind == "isal":
                rows["pull fetch"].append(marks[-1] - start)
            if kind == kinds[0]:
                rows["tar -xzf"].append(untar_layers([other.store.blob_path(l.digest)
                                                      for l in pulled.image.layers], work))
            shutil.rmtree(work / "pull-root")
        settle_disk(reg.dir)
        rows["skopeo pull"].append(timed(lambda: run(
            "skopeo", "--insecure-policy", "copy", "--src-tls-verify=false",
            f"docker://{name}", f"oci:{work / 'sk-oci'}:img")))
        shutil.rmtree(work / "sk-oci")
        if docker is not None:
            settle_disk(reg.dir)
            run("docker", "version", env=docker)  # the client binary back in the cache
            rows["docker pull"].append(timed(lambda: run("docker", "pull", "-q", name, env=docker)))
            run("docker", "rmi", "-f", name, env=docker)
        engine.images.remove(name)
    finally:
        reg.stop()


def report(rows: dict[str, list[float]]) -> None:
    """Best and median of each step; the ratios of both, since a lucky run of one side alone
    (the file system here is shared with other work) moves the best more than the median."""
    bests = {k: best(v) for k, v in rows.items() if v}
    medians = {k: statistics.median(v) for k, v in rows.items() if v}
    print(f"\n{'step':<16}{'best':>9}{'median':>9}   ({ROUNDS} rounds)")
    for k in bests:
        print(f"{k:<16}{bests[k]:>8.2f}s{medians[k]:>8.2f}s")

    def ratio(ours: str, theirs: str) -> str:
        return f"{bests[ours] / bests[theirs]:.2f}x best, {medians[ours] / medians[theirs]:.2f}x median"
    print(f"\npush vs skopeo:             {ratio('push', 'skopeo push')}")
    print(f"pull (fetch) vs skopeo:     {ratio('pull fetch', 'skopeo pull')}")
    print(f"pull + unpack vs skopeo:    {ratio('pull + unpack', 'skopeo pull')} (skopeo does not unpack)")
    print(f"pull + unpack vs tar -xzf:  {ratio('pull + unpack', 'tar -xzf')} (goal <= 1.3x)")
    if "pull (zlib)" in bests:
        print(f"  the same, zlib's inflate: {ratio('pull (zlib)', 'tar -xzf')} (without python-isal)")
    if "docker pull" in bests:
        print(f"pull + unpack vs docker:    {ratio('pull + unpack', 'docker pull')} (goal <= 1.0x)")
    else:
        print("pull + unpack vs docker:    skipped (no docker client, or no daemon could be started)")
    # The goals are judged on medians (a lucky best of one side says little); the best is the detail.
    print()
    goal("pull + unpack / tar -xzf of its layers (median)", medians["pull + unpack"] / medians["tar -xzf"], 1.3,
         f"best {bests['pull + unpack'] / bests['tar -xzf']:.2f}x; {medians['pull + unpack']:.2f} s vs "
         f"{medians['tar -xzf']:.2f} s, {ROUNDS} rounds")
    docker = "docker pull" in medians
    goal("pull + unpack / docker pull (median)",
         medians["pull + unpack"] / medians["docker pull"] if docker else None, 1.0,
         f"best {bests['pull + unpack'] / bests['docker pull']:.2f}x; {medians['pull + unpack']:.2f} s vs "
         f"{medians['docker pull']:.2f} s" if docker else "no docker client, or no daemon could be started")


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
        print(f"image: {len(image.layers)} layer(s), {size / 1e6:.0f} MB compressed, "
              f"{image.size / 1e6:.0f} MB unpacked")
        rows: dict[str, list[float]] = {k: [] for k in ("push", "skopeo push", "pull fetch", "pull + unpack",
                                                        "pull (zlib)", "tar -xzf", "skopeo pull",
                                                        "docker pull")}
        with docker_daemon() as docker:
            for _ in range(ROUNDS):
                one_round(engine, work, docker, rows)
        report(rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
