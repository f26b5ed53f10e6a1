"""Container start-up of the OCI runtime, side by side with runc, as ratios.

    make bench            (or: .venv/bin/python benchmarks/bench_runtime.py)

One busybox bundle (Docker's default spec: six namespaces, seccomp, 14
capabilities, masked paths, a cgroup) running ``true``, measured four ways in
the same run:

* library: create + start through :class:`sandbox.runtime.Runtime` from a
  small single-threaded Python process that has imported the runtime (what the
  supervisor does for every container; no new interpreter per container);
* library, whole cycle: create + start + wait for the exit + delete;
* ``runc run`` of the same bundle, a new process each time;
* ``python -m sandbox.runtime run``, a new interpreter each time (runc's shape).

Also printed: where the library's create time goes, step by step, as the
container's init measured it.  Nothing here asserts a time.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import goal  # noqa: E402

ROUNDS = 50

# Runs in a fresh interpreter so the measuring process is as small as the supervisor.
LIBRARY_LOOP = r"""
import json, os, sys, time
from sandbox import kernel
from sandbox.runtime import Runtime
kernel.set_child_subreaper(True)   # the init is a grandchild: adopt it to reap it
rt = Runtime(sys.argv[1])
bundle, rounds = sys.argv[2], int(sys.argv[3])
out = {"create_start": [], "cycle": [], "steps": {}, "parts": {}}
spent = {}

def timed(name, fn):
    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - t
    return wrapper

rt._make_cgroup = timed("cgroup made and limited", rt._make_cgroup)
rt._spawn = timed("init forked and set up (until ready)", rt._spawn)
devnull = os.open(os.devnull, os.O_RDWR)
for i in range(rounds + 3):
    spent.clear()
    t0 = time.perf_counter()
    c = rt.create(f"bench-{os.getpid()}-{i}", bundle, stdio=(devnull, devnull, devnull))
    t_created = time.perf_counter()
    c.start()
    t1 = time.perf_counter()
    os.waitpid(c.pid, 0)
    t_exited = time.perf_counter()
    c.delete()
    t2 = time.perf_counter()
    if i >= 3:   # the first rounds compile the seccomp filter and warm the caches
        out["create_start"].append(t1 - t0)
        out["cycle"].append(t2 - t0)
        parts = dict(spent)
        parts["create, the rest (check, state dir, fifo, state.json)"] = (
            t_created - t0 - sum(spent.values()))
        parts["start (exec fifo, until exec)"] = t1 - t_created
        parts["`true` runs and is reaped"] = t_exited - t1
        parts["delete (cgroup, state dir)"] = t2 - t_exited
        for name, sec in parts.items():
            out["parts"].setdefault(name, []).append(sec * 1000)
        for name, ms in rt.last_timings:
            out["steps"].setdefault(name, []).append(ms)
print(json.dumps(out))
"""


def make_bundle(work: Path) -> Path:
    from sandbox.image.bootstrap import _busybox_tree, find_busybox
    from sandbox.runtime import cli

    bundle = work / "bundle"
    (bundle / "rootfs").mkdir(parents=True)
    _busybox_tree(bundle / "rootfs", find_busybox(), 0)
    assert cli.main(["spec", "-b", str(bundle)]) == 0
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["args"] = ["true"]
    spec["linux"]["cgroupsPath"] = "/sandbox/bench"
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


def median_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.1f} ms (min {min(values) * 1000:.1f}, max {max(values) * 1000:.1f})"


def time_command(cmd: list[str], rounds: int, cwd: Path) -> list[float]:
    times = []
    for i in range(rounds):
        args = [c.replace("{i}", str(i)) for c in cmd]
        t0 = time.perf_counter()
        subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    if os.geteuid() != 0:
        print("bench_runtime: skipped, needs root (namespaces, mounts, cgroups)")
        return
    work = Path(tempfile.mkdtemp(prefix="sbx-bench-rt-"))
    state = work / "state"
    try:
        bundle = make_bundle(work)
        # Each container gets its own cgroup below /sandbox, as the engine's do.
        spec = json.loads((bundle / "config.json").read_text())
        spec["linux"].pop("cgroupsPath")
        (bundle / "config.json").write_text(json.dumps(spec))
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        out = subprocess.run([sys.executable, "-c", LIBRARY_LOOP, str(state), str(bundle), str(ROUNDS)],
                             check=True, capture_output=True, text=True, env=env)
        lib = json.loads(out.stdout)
        ours = statistics.median(lib["create_start"])
        print(f"busybox `true`, Docker's default spec, {ROUNDS} rounds each, medians:")
        print(f"  library create+start             {median_ms(lib['create_start'])}")
        print(f"  library create+start+wait+delete {median_ms(lib['cycle'])}")
        runc = shutil.which("runc")
        if runc:
            rt = time_command([runc, "--root", str(work / "runc"), "run", "r{i}"], ROUNDS, bundle)
            print(f"  runc run                         {median_ms(rt)}")
            print(f"  ratio runc run / library create+start: {statistics.median(rt) / ours:.1f}x faster")
            print(f"  ratio runc run / library whole cycle:  "
                  f"{statistics.median(rt) / statistics.median(lib['cycle']):.1f}x faster")
        else:
            print("  runc run                         skipped (apt install runc)")
        cli_times = time_command([sys.executable, "-m", "sandbox.runtime", "--root", str(state),
                                  "run", "c{i}"], ROUNDS // 5, bundle)
        print(f"  python -m sandbox.runtime run    {median_ms(cli_times)} (a new interpreter each time)")
        print("where the library's whole cycle goes (median ms):")
        for name, values in lib["parts"].items():
            print(f"  {name:52s} {statistics.median(values):6.2f}")
        if runc:
            goal("runtime library create+start+wait+delete / runc run",
                 statistics.median(lib["cycle"]) / statistics.median(rt), 0.4,
                 f"{statistics.median(lib['cycle']) * 1000:.1f} ms vs {statistics.median(rt) * 1000:.1f} ms, "
                 f"medians of {ROUNDS}; the engine's warm run is bench_containers' goal")
        print("where the library's create time goes (the init's own steps, median ms):")
        steps = sorted(((statistics.median(v), k) for k, v in lib["steps"].items()), reverse=True)
        for ms, name in steps[:10]:
            print(f"  {name:40s} {ms:6.2f}")
        print(f"  {'(all steps)':40s} {sum(ms for ms, _ in steps):6.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
