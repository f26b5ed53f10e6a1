"""Containers through the supervisor, side by side with runc, Docker and Podman, as ratios.

    .venv/bin/python benchmarks/bench_containers.py     (or: make bench)

Measured in one run, on one busybox image bootstrapped from the host:

* warm: ``Engine.run("busybox", ["true"], remove=True, network="none")`` 50
  times in one Python process that has imported the engine (a notebook
  kernel's situation), against ``runc run`` (whose spec has a network
  namespace with loopback only: the fair comparison), and the same on the
  default bridge beside it;
* where a warm run's time goes: ``Engine.run`` is one request (``run_named``:
  create, start, stream until the exit); the same as two requests
  (``create_named``, then ``start``), interleaved with it, shows what the
  round trip saves and each half apart; and the supervisor's share of each
  step, sampled with py-spy when it is installed (shares of the profiled
  runs, scaled to the unprofiled median: py-spy itself slows the supervisor);
* cold: ``sandbox run --rm busybox true`` as a new process, 20 times (the
  supervisor already running, as it is after the first command);
* ``runc run`` of the same rootfs (Docker's default spec), a new process each time;
* ``docker run --rm busybox true`` and ``podman run --rm busybox true`` when
  their commands are installed and answer (nothing is started for them);
* the warm run and ``runc run`` again, 50 of each taking turns (a machine
  whose speed drifts moves both alike; but each of our runs then follows a
  runc run and the caches it leaves), printed beside the goal line;
* supervision memory: with 100 detached ``sleep`` containers, the summed
  PSS of the supervisor and its parked spare init (/proc/PID/smaps_rollup),
  above idle, divided by 100.

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

from benchmarks.common import busybox_store, goal, median_ms, timed  # noqa: E402

WARM = 50
COLD = 20

#: Where the supervisor's time goes: the first of these functions found from the
#: sampled frame outwards names the step (so an rmtree inside the create counts as removal).
PHASES = (
    ("make", "fork the next spare init (while this one sets up)"),
    ("rmtree", "deferred delete of the last container's files"),
    ("Loop.delete_when_idle.<locals>.first.<locals>.piece", "deferred delete of the last container's files"),
    ("Loop.delete_when_idle.<locals>.first", "deferred delete of the last container's files"),
    ("_Lines.next", "the init sets itself up (fork, namespaces, mounts, seccomp, caps)"),
    ("make_cgroup", "cgroup made, limited, devices"),
    ("Runtime._make_cgroup", "cgroup made, limited, devices"),        # (before the runtime's split)
    ("spawn", "fork and seccomp program, caller side"),
    ("Runtime._spawn", "fork and seccomp program, caller side"),
    ("Runtime.create", "runtime create: spec check, fifo, state.json"),
    ("Container.start", "runtime start (exec fifo)"),
    ("mount_rootfs", "overlay mount"),
    ("Box._prepare_bundle", "spec built and written, network attach"),
    ("Box._record_started", "record and event at start"),
    ("Box.start", "start, the rest (spec, bundle, record)"),
    ("unmount_rootfs", "overlay unmount"),
    ("Container.delete", "runtime delete: cgroup removed, state dir"),
    ("Box.remove", "removal: record, lease, rename"),
    ("Box.exited", "exit: drain, OOM counter, events"),
    ("op_create_named", "create: image, record, dirs, lease"),
    ("Loop.run_once", "supervisor loop, sockets, other"),
    ("select", "supervisor idle: the container's exit, the client"),
)


def uss(pid: int) -> int:
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1]) * 1024
    return total


def supervision_memory(pid: int) -> int:
    """The summed PSS of the supervisor and its parked spare init (sandbox/runtime/spare.py).

    The spare is a fork of the supervisor, so most of their pages are shared and the
    supervisor's USS alone leaves them out; their summed PSS counts every page they
    share once (and what they share with other processes, such as libpython, in part)."""
    pids = [pid] + [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()
                    if open(f"/proc/{c}/comm").read().strip() == "sandbox-spare"]
    total = 0
    for p in pids:
        with open(f"/proc/{p}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
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


def warm_runs(engine, network: str) -> dict[str, float]:
    """Medians (ms) of WARM ``Engine.run`` of ``true`` (one request, ``run_named``), and,
    interleaved with them, of the same as two requests (``create_named``, then ``start``)."""
    containers = engine.containers
    total, two, create, start = [], [], [], []
    for _ in range(WARM):
        t0 = time.perf_counter()
        assert engine.run("busybox", ["true"], remove=True, network=network).exit_code == 0
        t1 = time.perf_counter()
        cid = containers.create_id("busybox", ["true"], auto_remove=True, network=network)
        t2 = time.perf_counter()
        assert containers.start_attached(cid, lambda stream, data: None) == 0
        t3 = time.perf_counter()
        total.append(t1 - t0)
        two.append(t3 - t1)
        create.append(t2 - t1)
        start.append(t3 - t2)
    return {"total": median_ms(total), "two": median_ms(two), "create": median_ms(create),
            "start": median_ms(start)}


def paired(engine, runc: list[str] | None) -> tuple[float, float | None]:
    """Medians (ms) of WARM ``Engine.run``s of ``true`` and ``runc run``s, taking turns: a
    machine whose speed drifts during the run moves both alike, so their ratio holds."""
    ours, theirs = [], []
    for _ in range(WARM):
        t0 = time.perf_counter()
        assert engine.run("busybox", ["true"], remove=True, network="none").exit_code == 0
        ours.append(time.perf_counter() - t0)
        if runc is not None:
            theirs.append(timed(runc))
    return median_ms(ours), median_ms(theirs) if theirs else None


def supervisor_phases(engine, pid: int, tmp: Path) -> list[tuple[str, float]]:
    """Each step's share of the supervisor's samples over warm runs (py-spy; [] without it)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return []
    out = tmp / "spy.txt"
    proc = subprocess.Popen([spy, "record", "-p", str(pid), "-r", "500", "-f", "raw", "-o", str(out),
                             "--idle", "-d", "5"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Runs from before py-spy attaches until it has finished: every sample falls inside the
    # loop.  (Sleeping while it attached, and after the loop, had sampled seconds of an idle
    # supervisor, and "supervisor idle" came out as 11 ms of a run that waits under 2.)
    while proc.poll() is None:
        engine.run("busybox", ["true"], remove=True, network="none")
    counts: dict[str, int] = {}
    total = 0
    for line in out.read_text().splitlines() if out.exists() else []:
        stack, _, n = line.rpartition(" ")
        frames = [f.split(" (")[0] for f in stack.split(";")]
        if not any(f == "Loop.run" for f in frames):
            continue                        # the process's start-up, not its loop
        name = next((label for f in reversed(frames) for fn, label in PHASES
                     if f == fn or (fn == "select" and f.endswith(".select"))), "other")
        counts[name] = counts.get(name, 0) + int(n)
        total += int(n)
    return sorted(((k, v / total) for k, v in counts.items()), key=lambda kv: -kv[1]) if total else []


def main() -> int:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-containers-") as tmpdir:
        tmp = Path(tmpdir)
        engine, env = busybox_store(tmp)
        try:
            for network in ("none", "bridge", "none", "bridge"):   # warm both paths first
                engine.run("busybox", ["true"], remove=True, network=network)
            split = warm_runs(engine, "none")
            results["warm Engine.run --network none"] = split["total"]
            results["warm Engine.run --network bridge"] = warm_runs(engine, "bridge")["total"]
            results["warm Engine.run --network none, again"] = warm_runs(engine, "none")["total"]

            cmd = [sys.executable, "-m", "sandbox", "run", "--rm", "busybox", "true"]
            timed(cmd, env)
            results["cold sandbox run --rm"] = median_ms([timed(cmd, env) for _ in range(COLD)])

            bundle = runc_bundle(engine, tmp)
            runc = None
            if bundle is not None:
                runc = ["runc", "--root", str(tmp / "runc"), "run", "--bundle", str(bundle), "bench"]
                timed(runc)
                results["runc run"] = median_ms([timed(runc) for _ in range(WARM)])
            results["warm Engine.run, taking turns with runc"], turns = paired(engine, runc)
            if turns is not None:
                results["runc run, taking turns"] = turns
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
            phases = supervisor_phases(engine, pid, tmp)
            base = supervision_memory(pid)
            sleepers = [engine.containers.run("busybox", ["sleep", "600"], detach=True) for _ in range(100)]
            loaded = supervision_memory(pid)
            for c in sleepers:
                c.remove(force=True)
        finally:
            from tests.integration.container_env import clean_engine
            clean_engine(engine)

    print(f"{'measure':32} {'median ms':>10}")
    for name, ms in results.items():
        print(f"{name:32} {ms:10.1f}")
    none = results["warm Engine.run --network none"]
    print(f"\nwhere a warm run (--network none, median {none:.1f} ms, one request) goes; as two requests "
          f"instead (interleaved): {split['two']:.1f} ms = create_named {split['create']:.1f} ms "
          f"+ start until the exit {split['start']:.1f} ms")
    if phases:
        print("in the supervisor (py-spy shares of the profiled runs x the median above):")
        for name, share in phases:
            print(f"  {name:66} {share * none:5.1f} ms")
    runc_ms = results.get("runc run, taking turns")
    mine = results["warm Engine.run, taking turns with runc"]
    print(f"the bridge adds {results['warm Engine.run --network bridge'] - none:+.1f} ms (bench_network's goal: +5 ms)")
    blocks = results.get("runc run")
    goal("warm Engine.run (network none) / runc run", none / blocks if blocks else None, 0.4,
         f"{none:.1f} ms vs {blocks:.1f} ms, medians of {WARM}" if blocks else "runc not installed")
    if runc_ms:
        print(f"the same taking turns, run by run: {mine / runc_ms:.2f}x ({mine:.1f} vs {runc_ms:.1f} ms; "
              "each of ours follows a runc run, with the caches that leaves)")
    if runc_ms:
        print(f"warm Engine.run --network bridge / runc run: "
              f"{results['warm Engine.run --network bridge'] / runc_ms:.2f}x (context)")
        print(f"cold sandbox run / runc run:  {results['cold sandbox run --rm'] / runc_ms:.2f}x")
    for tool in ("docker", "podman"):
        if f"{tool} run --rm" in results:
            print(f"{tool} run / cold sandbox run: {results[f'{tool} run --rm'] / results['cold sandbox run --rm']:.2f}x")
    print(f"\nsupervisor and spare init, PSS: {base / 2**20:.1f} MiB idle, {loaded / 2**20:.1f} MiB with 100 containers "
          f"= {loaded / 100 / 2**20:.2f} MiB per container ({(loaded - base) / 100 / 1024:.0f} KiB each above idle)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
