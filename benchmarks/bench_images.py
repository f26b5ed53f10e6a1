"""Image-store timings, side by side with the standard tools, as ratios.

    make bench            (or: .venv/bin/python benchmarks/bench_images.py)

A 100 MB image (2,000 small files and one large file) is made into a layer, applied,
saved, loaded and imported; each step is timed next to the tool a person would use for
the same job in the same run (GNU tar + gzip, skopeo).  Ratios > 1 mean we are slower.
Nothing here asserts a time: the figures are for reading and for the issue notes.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox import Engine  # noqa: E402
from sandbox.image import tarlayer  # noqa: E402
from sandbox.image.layers import write_layer_blob  # noqa: E402

SMALL_FILES = 2000
BIG_FILE_MB = 84


def make_tree(root: Path) -> None:
    rng = random.Random(42)
    for i in range(SMALL_FILES):
        d = root / f"dir{i % 40:02d}"
        d.mkdir(exist_ok=True)
        # half-compressible content, like source and text files
        words = b" ".join(rng.choice([b"container", b"layer", b"image", b"kernel", b"cgroup"])
                          for _ in range(rng.randrange(200, 1600)))
        (d / f"file{i:04d}.txt").write_bytes(words)
    with open(root / "big.bin", "wb") as f:
        for _ in range(BIG_FILE_MB):
            f.write(rng.randbytes(512 * 1024) + bytes(512 * 1024))


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="sbx-bench-"))
    rows: list[tuple[str, float, str, float | None]] = []
    try:
        tree = work / "tree"
        tree.mkdir()
        make_tree(tree)
        size = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
        print(f"tree: {SMALL_FILES} small files + 1 large file, {size / 1e6:.0f} MB")
        engine = Engine(work / "root")
        store = engine.store

        ours = timed(lambda: write_layer_blob(store, lambda out: tarlayer.write_tree(tree, out)))
        theirs = timed(lambda: sh("tar", "--sort=name", "--numeric-owner", "-C", str(tree), "-czf",
                                  str(work / "t.tgz"), "."))
        rows.append(("layer from tree (tar+gzip)", ours, "GNU tar -cz", theirs))

        blob = write_layer_blob(store, lambda out: tarlayer.write_tree(tree, out))

        def apply_ours() -> None:
            target = work / "apply"
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            tarlayer.apply_layer(store.blob_path(blob.digest), target, mode="overlay")

        def apply_tar() -> None:
            target = work / "apply-tar"
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            sh("tar", "-C", str(target), "-xzf", str(store.blob_path(blob.digest)))
        rows.append(("apply layer (check + extract)", timed(apply_ours), "GNU tar -xz", timed(apply_tar)))

        rootfs_tar = work / "rootfs.tar"
        sh("tar", "-C", str(tree), "-cf", str(rootfs_tar), ".")

        def do_import() -> None:
            with open(rootfs_tar, "rb") as f:
                engine.images.import_(f, tag="bench:latest")
        rows.append(("import rootfs tar", timed(do_import, 1), "", None))

        out = work / "saved.tar"

        def save() -> None:
            with open(out, "wb") as f:
                engine.images.save(["bench:latest"], f)
        skopeo = shutil.which("skopeo")

        def skopeo_save() -> None:
            (work / "sk.tar").unlink(missing_ok=True)
            sh("skopeo", "--insecure-policy", "copy", f"oci:{store.oci}:bench:latest",
               f"docker-archive:{work / 'sk.tar'}:bench:latest")
        rows.append(("save (docker-archive)", timed(save), "skopeo copy", timed(skopeo_save) if skopeo else None))

        def load() -> None:
            other = Engine(work / "other")
            with open(out, "rb") as f:
                other.images.load(f)
            shutil.rmtree(work / "other")

        def skopeo_load() -> None:
            shutil.rmtree(work / "sk-oci", ignore_errors=True)
            sh("skopeo", "--insecure-policy", "copy", f"docker-archive:{out}", f"oci:{work / 'sk-oci'}:bench:latest")
        rows.append(("load (verify + unpack)", timed(load), "skopeo copy (no unpack)",
                     timed(skopeo_load) if skopeo else None))

        boot = Engine(work / "boot")
        rows.append(("bootstrap busybox", timed(lambda: boot.images.bootstrap("busybox"), 1), "", None))
        cli = timed(lambda: subprocess.run([sys.executable, "-m", "sandbox", "images"], check=True,
                                           capture_output=True, env=dict(os.environ, SANDBOX_ROOT=str(work / "boot"))))
        rows.append(("cold `sandbox images`", cli, "", None))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{'step':<32}{'sandbox':>10}   {'reference':<26}{'time':>8}{'ratio':>8}")
    for name, ours, ref, theirs in rows:
        extra = f"{ref:<26}{theirs:>7.2f}s{ours / theirs:>7.2f}x" if theirs else ""
        print(f"{name:<32}{ours:>9.2f}s   {extra}")


if __name__ == "__main__":
    main()
