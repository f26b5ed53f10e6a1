"""What the vfs storage driver costs, beside overlay and GNU cp, as ratios.

    .venv/bin/python benchmarks/bench_vfs.py [DIR]   (or: make bench; needs root for the runs)

DIR (default /var/tmp) is where the private store goes: a mounted xfs made
with ``-m reflink=1`` (or btrfs) shows the reflink path.

Two images in a private store: busybox bootstrapped from the host (2 MB, 300
entries, mostly hard links), and "big": busybox plus the host's Python
standard library (/usr/lib/python3.11 and /usr/lib/python3, about 110 MB in
thousands of small files), imported as one layer.  For each:

* the base tree: made once per image (layers applied onto a copy of the
  nearest lower base tree), shared by every container of the image;
* the per-container copy, ``image.vfs.copy_tree`` of the base tree (what a
  vfs ``create`` and every vfs build step pays), against ``cp -a
  --reflink=auto`` of the same tree, and against what overlay pays instead:
  one mount and one unmount of the image's layers;
* warm ``Engine.run(IMAGE, ["true"])`` with ``--rm`` on each driver.

The file system decides most of it: on ext4 every byte is copied (in the
kernel, ``copy_file_range``), on xfs with reflink or btrfs only metadata is.
Nothing here asserts a time.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import busybox_store  # noqa: E402

ROUNDS = 5
BIG_SOURCES = ("/usr/lib/python3.11", "/usr/lib/python3")


def spread(samples: list[float]) -> str:
    return (f"median {statistics.median(samples) * 1000:8.1f} ms  "
            f"(min {min(samples) * 1000:.1f}, max {max(samples) * 1000:.1f})")


def big_image(engine, tmp: Path) -> str | None:
    """busybox's tree plus the host's Python library as one imported layer; its name."""
    sources = [s for s in BIG_SOURCES if os.path.isdir(s)]
    if not sources:
        return None
    base = engine.image_store.layers.base_tree(engine.images.get("busybox").chain_ids)
    archive = tmp / "big.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(base, arcname=".")
        for src in sources:
            tar.add(src, arcname="." + src)
    with open(archive, "rb") as f:
        engine.images.import_(f, tag="big:latest")
    archive.unlink()
    return "big:latest"


def tree_size(path: Path) -> tuple[int, int]:
    """Entries, and bytes of file content (each inode once: busybox is one file of many names)."""
    entries = size = 0
    seen: set[int] = set()
    for dirpath, dirnames, filenames in os.walk(path):
        entries += len(dirnames) + len(filenames)
        for f in filenames:
            st = os.lstat(os.path.join(dirpath, f))
            if st.st_ino not in seen:
                seen.add(st.st_ino)
                size += st.st_size
    return entries, size


def measure(engine, image: str, tmp: Path) -> None:
    from sandbox import kernel
    from sandbox.image import vfs
    layers = engine.image_store.layers
    chain = engine.images.get(image).chain_ids
    for c in chain:
        if layers.has_base_tree(c):
            shutil.rmtree(layers.base_path(c))
    t = time.perf_counter()
    with engine.store.transaction():
        base = layers.base_tree(chain)
    made = time.perf_counter() - t
    entries, size = tree_size(base)
    print(f"\n{image}: {entries} entries, {size / 1e6:.1f} MB; base tree made once in {made * 1000:.0f} ms")
    ours, cp, overlay = [], [], []
    cloned = 0
    for i in range(ROUNDS):
        dst = tmp / f"copy-{i}"
        stats = vfs.copy_tree(base, dst)
        ours.append(stats.seconds)
        cloned = stats.cloned
        shutil.rmtree(dst)
        t = time.perf_counter()
        subprocess.run(["cp", "-a", "--reflink=auto", str(base), str(dst)], check=True)
        cp.append(time.perf_counter() - t)
        shutil.rmtree(dst)
        view = tmp / "view"
        view.mkdir(exist_ok=True)
        t = time.perf_counter()
        layers.mount(chain, view)
        kernel.umount(view, kernel.MNT_DETACH)
        overlay.append(time.perf_counter() - t)
    print(f"  vfs copy_tree          {spread(ours)}   ({cloned} files reflinked)")
    print(f"  cp -a --reflink=auto   {spread(cp)}   ratio {statistics.median(ours) / statistics.median(cp):.2f}x")
    print(f"  overlay mount+umount   {spread(overlay)}")
    for driver in ("overlay", "vfs"):
        os.environ["SANDBOX_STORAGE_DRIVER"] = driver
        samples = []
        for _ in range(ROUNDS):
            t = time.perf_counter()
            engine.run(image, ["true"], remove=True)
            samples.append(time.perf_counter() - t)
        print(f"  run --rm true ({driver:7}) {spread(samples)}")
    os.environ.pop("SANDBOX_STORAGE_DRIVER", None)


def main() -> int:
    if os.geteuid() != 0:
        print("bench_vfs: skipped (containers and overlay mounts need root)")
        return 0
    where = sys.argv[1] if len(sys.argv) > 1 else "/var/tmp"
    with tempfile.TemporaryDirectory(dir=where) as tmpdir:
        tmp = Path(tmpdir)
        engine, _env = busybox_store(tmp)
        try:
            images = ["busybox:latest"]
            big = big_image(engine, tmp)
            if big:
                images.append(big)
            for image in images:
                measure(engine, image, tmp)
        finally:
            for c in engine.containers.list(all=True):
                c.remove(force=True)
            engine.supervisor.stop()
    print(f"\n(median of {ROUNDS} rounds, the store in {where})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
