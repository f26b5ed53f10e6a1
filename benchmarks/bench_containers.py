"""Containers through the supervisor, side by side with runc, Docker and Podman, as ratios.

    .venv/bin/python benchmarks/bench_containers.py     (or: make bench)

Measured in one run, on one busybox image bootstrapped from the host:

* warm: ``Engine.run("busybox", ["true"], remove=True)`` 50 times in one Python
  process that has imported the engine (a notebook kernel's situation);
* cold: ``sandbox run --rm busybox true`` as a new process, 20 times (the
  supervisor already running, as it is after the first command);
* ``runc run`` of the same rootfs (Docker's default spec), a new process each time;
* ``docker run --rm busybox true`` and ``podman run --rm busybox true`` when
  their commands are installed and answer (nothing is started for them);
* supervision memory: with 100 detached ``sleep`` containers, the
  supervisor's unique memory (USS, /proc/PID/smaps_rollup) divided by 100.

Run it with .pyc caching on (PYTHONDONTWRITEBYTECODE unset): a cold command
that recompiles every module measures the compiler, not the engine.
Nothing here asserts a time.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import busybox_store, median_ms, timed  # noqa: E402

WARM = 50
COLD = 20


def uss(pid: int) -> int:
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1]) * 1024
    return total


def runc_bundle(engine, tmp: Path) -> Path | None:
    if not shutil.which("runc"):
        return None
    from sandbox import kernel
    from sandbox.runtime.spec import ContainerOptions, default_spec
    from sandbox.cgroups import detect
    bundle = tmp / "bundle"
    (bundle / "rootfs").mkdir(parents=True)
    image = engine.images.get("busybox")
    engine.image_store.layers.flatten(image.chain_ids, bundle / "rootfs")
    spec = default_spec("rootfs", ContainerOptions(args=["true"]), host_bounding_set=kernel.host_bounding_set(),
                        cgroup_version="v1" if detect() == "v1" else "v2")
    import json
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


def main() -> int:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-containers-") as tmpdir:
        tmp = Path(tmpdir)
        engine, env = busybox_store(tmp)
        try:
            for _ in range(3):
                engine.run("busybox", ["true"])
            warm = []
            for _ in range(WARM):
                t = time.perf_counter()
                r = engine.run("busybox", ["true"])
                warm.append(time.perf_counter() - t)
                assert r.exit_code == 0
            results["warm Engine.run"] = median_ms(warm)

            cmd = [sys.executable, "-m", "sandbox", "run", "--rm", "busybox", "true"]
            timed(cmd, env)
            results["cold sandbox run --rm"] = median_ms([timed(cmd, env) for _ in range(COLD)])

            bundle = runc_bundle(engine, tmp)
            if bundle is not None:
                runc = ["runc", "--root", str(tmp / "runc"), "run", "--bundle", str(bundle), "bench"]
                timed(runc)
                results["runc run"] = median_ms([timed(runc) for _ in range(COLD)])
            for tool in ("docker", "podman"):
                if not shutil.which(tool) or subprocess.run([tool, "info"], capture_output=True).returncode:
                    continue
                if subprocess.run([tool, "image", "inspect", "busybox"], capture_output=True).returncode:
                    # the same busybox as ours: saved from our store, loaded into theirs
                    saved = tmp / "busybox.tar"
                    with open(saved, "wb") as f:
                        engine.images.save(["busybox"], f)
                    subprocess.run([tool, "load", "-i", str(saved)], capture_output=True)
                if subprocess.run([tool, "image", "inspect", "busybox"], capture_output=True).returncode == 0:
                    extra = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"] if tool == "podman" else []
                    # --network none: ours has no network by default, so neither should theirs
                    argv = [tool, "run", "--rm", "--network", "none", *extra, "busybox", "true"]
                    results[f"{tool} run --rm"] = median_ms([timed(argv) for _ in range(5)])

            pid = engine.supervisor.call("ping")["pid"]
            base = uss(pid)
            sleepers = [engine.containers.run("busybox", ["sleep", "600"], detach=True) for _ in range(100)]
            loaded = uss(pid)
            for c in sleepers:
                c.remove(force=True)
        finally:
            from tests.integration.container_env import clean_engine
            clean_engine(engine)

    print(f"{'measure':32} {'median ms':>10}")
    for name, ms in results.items():
        print(f"{name:32} {ms:10.1f}")
    if "runc run" in results:
        print(f"\nwarm Engine.run / runc run:   {results['warm Engine.run'] / results['runc run']:.2f}x")
        print(f"cold sandbox run / runc run:  {results['cold sandbox run --rm'] / results['runc run']:.2f}x")
    for tool in ("docker", "podman"):
        if f"{tool} run --rm" in results:
            print(f"{tool} run / cold sandbox run: {results[f'{tool} run --rm'] / results['cold sandbox run --rm']:.2f}x")
    print(f"\nsupervisor USS: {base / 2**20:.1f} MiB idle, {loaded / 2**20:.1f} MiB with 100 containers "
          f"= {loaded / 100 / 2**20:.2f} MiB per container ({(loaded - base) / 100 / 1024:.0f} KiB each above idle)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
