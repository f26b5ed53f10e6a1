"""Builds side by side with Docker's classic builder, as ratios.

    .venv/bin/python benchmarks/bench_build.py     (or: make bench)

Two Dockerfiles on the busybox image bootstrapped from the host:

* ``seed``: the slide deck's first example (FROM, RUN, ENV, RUN, CMD);
* ``copy200``: five steps, two RUN and one COPY of a 200-file directory.

For each: a cold build (``sandbox build --no-cache`` as a new process, the
supervisor already running) beside ``DOCKER_BUILDKIT=0 docker build
--no-cache`` of the same context when a Docker daemon answers (the busybox
image is loaded into it first with ``sandbox save | docker load``), and a full
cache hit in a warm process (``Engine.build`` again, nothing changed).
Medians of 5 cold and 30 warm runs.  Nothing here asserts a time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import busybox_store, median_ms, timed  # noqa: E402

COLD = 5
WARM = 30

SEED = 'FROM busybox\nRUN echo hello > /greeting\nENV A=1\nRUN ls / > /listing\nCMD ["cat","/greeting"]\n'
COPY200 = ("FROM busybox\nRUN mkdir -p /app && echo setup > /app/setup\nCOPY files/ /app/files/\n"
           "RUN ls /app/files | wc -l > /app/count\nCMD [\"cat\", \"/app/count\"]\n")


def docker_ready() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          timeout=20).returncode == 0


def make_contexts(tmp: Path) -> dict[str, Path]:
    seed = tmp / "seed"
    seed.mkdir()
    (seed / "Dockerfile").write_text(SEED)
    big = tmp / "copy200"
    (big / "files").mkdir(parents=True)
    (big / "Dockerfile").write_text(COPY200)
    for i in range(200):
        (big / "files" / f"f{i:03d}.txt").write_text(f"file {i}\n" * 20)
    return {"seed": seed, "copy200": big}


def main() -> int:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmpdir:
        tmp = Path(tmpdir)
        engine, env = busybox_store(tmp)
        engine.ensure_supervisor()
        contexts = make_contexts(tmp)
        have_docker = docker_ready()
        if have_docker:
            save = subprocess.run([sys.executable, "-m", "sandbox", "save", "busybox"], env=env,
                                  capture_output=True, check=True)
            subprocess.run(["docker", "load"], input=save.stdout, check=True, stdout=subprocess.DEVNULL)
        try:
            for name, ctx in contexts.items():
                ours = [timed([sys.executable, "-m", "sandbox", "build", "--no-cache", "-q", "-t",
                               f"bench-{name}", str(ctx)], env=env) for _ in range(COLD)]
                results[f"{name} cold: sandbox build --no-cache"] = median_ms(ours)
                if have_docker:
                    denv = dict(os.environ, DOCKER_BUILDKIT="0")
                    theirs = [timed(["docker", "build", "--no-cache", "-q", "-t", f"bench-{name}", str(ctx)],
                                    env=denv) for _ in range(COLD)]
                    results[f"{name} cold: docker build --no-cache (legacy builder)"] = median_ms(theirs)
                engine.build(ctx, tags=[f"bench-{name}"])
                warm = []
                for _ in range(WARM):
                    t = time.perf_counter()
                    engine.build(ctx, tags=[f"bench-{name}"])
                    warm.append(time.perf_counter() - t)
                results[f"{name} warm full cache hit: Engine.build"] = median_ms(warm)
                if have_docker:
                    hits = [timed(["docker", "build", "-q", "-t", f"bench-{name}", str(ctx)],
                                  env=dict(os.environ, DOCKER_BUILDKIT="0")) for _ in range(COLD)]
                    results[f"{name} cache hit: docker build (new process)"] = median_ms(hits)
        finally:
            if have_docker:
                subprocess.run(["docker", "rmi", "-f", "bench-seed", "bench-copy200"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                subprocess.run(["docker", "builder", "prune", "-f"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            for c in engine.containers.list(all=True):
                c.remove(force=True)
            engine.supervisor.call("shutdown")
    width = max(len(k) for k in results)
    print("build benchmark (median milliseconds)")
    for key, value in results.items():
        print(f"  {key:<{width}}  {value:8.1f}")
    for name in ("seed", "copy200"):
        docker = results.get(f"{name} cold: docker build --no-cache (legacy builder)")
        if docker:
            ratio = results[f"{name} cold: sandbox build --no-cache"] / docker
            print(f"  {name}: sandbox/docker cold = {ratio:.2f}x (goal <= 0.5x)")
    if not have_docker:
        print("  (no Docker daemon answered: start one with `dockerd &` for the side-by-side figures)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
