"""What the live ResourceMonitor costs the notebook kernel, as a share of one core.

    .venv/bin/python benchmarks/bench_monitor.py      (or: make bench)

Three busybox containers burn a little CPU each (``--cpus 0.2``, a shell loop;
a private store, ``common.busybox_store``), and a ``ResourceMonitor`` watches
them with three panels (memory, cpu, pids) at its defaults: 5 Hz sampling, a
redraw a second at most, matplotlib's Agg backend, its ipywidgets (the Image
the PNG goes into, the status line, the toggle) made as in a notebook cell.
It runs for ``SECONDS`` (20 s) in this process; the process's CPU time (user
+ sys of every thread, ``os.times``) over that time, less the same process's
CPU over an idle stretch of the same length with the same containers running,
is the monitor's cost.  The goal (issue 18) is at most 5% of one core.

Other work on the machine does not count against the monitor (it is its own
CPU time, not wall time), but it does slow each draw a little (caches, a
busier core), so the figure can move by a few tenths of a percent between
runs.  Nothing here asserts a time.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MPLBACKEND", "Agg")

from benchmarks.common import busybox_store, goal  # noqa: E402

SECONDS = float(os.environ.get("BENCH_MONITOR_SECONDS", "20"))
BURN = "while :; do :; done"


def cpu_seconds() -> float:
    """User + system CPU time of this process, all its threads."""
    t = os.times()
    return t.user + t.system


def thread_cpu(native_id: int | None) -> float:
    """CPU seconds of one thread of this process (0 when it has ended)."""
    if native_id is None:
        return 0.0
    try:
        with open(f"/proc/self/task/{native_id}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(engine: object) -> dict[str, float]:
    from magics.monitor import ResourceMonitor
    import matplotlib
    matplotlib.use("Agg")
    containers = [engine.containers.run("busybox", ["sh", "-c", BURN], detach=True,  # type: ignore[attr-defined]
                                        nano_cpus=200_000_000, name=f"burn{i}") for i in range(3)]
    try:
        # warm: imports, the first figure's layout, the font cache (a notebook pays them once)
        warm = ResourceMonitor(containers, ["memory", "cpu", "pids"], engine=engine)
        time.sleep(2.5)
        warm.stop()
        idle_start, wall = cpu_seconds(), time.monotonic()
        time.sleep(SECONDS)
        idle = (cpu_seconds() - idle_start) / (time.monotonic() - wall)

        start, wall = cpu_seconds(), time.monotonic()
        mon = ResourceMonitor(containers, ["memory", "cpu", "pids"], engine=engine, autostart=False)
        draw_ms: list[float] = []
        draw = mon._draw

        def timed_draw() -> None:    # the CPU time of each redraw, for the report
            began = time.thread_time()
            draw()
            draw_ms.append((time.thread_time() - began) * 1000)
        mon._draw = timed_draw  # type: ignore[method-assign]
        mon.start()
        time.sleep(SECONDS)
        threads = {t.name: t.native_id for t in threading.enumerate() if t.name.startswith("sandbox-monitor")}
        sampler = thread_cpu(threads.get("sandbox-monitor-sampler"))
        drawer = thread_cpu(threads.get("sandbox-monitor"))
        busy = (cpu_seconds() - start) / (time.monotonic() - wall)
        samples, draws = len(mon.data), mon.draws
        full = getattr(mon._plot, "full_draws", draws)     # LivePlot redraws the axes only when they move
        mon.stop()
    finally:
        for c in containers:
            c.remove(force=True)
    elapsed = time.monotonic() - wall
    return {"pct": (busy - idle) * 100, "idle_pct": idle * 100, "samples": samples, "draws": draws,
            "full_draws": full, "sampler_pct": sampler / elapsed * 100, "draw_pct": drawer / elapsed * 100,
            "draw_ms": drawer / max(draws, 1) * 1000, "first_ms": draw_ms[0] if draw_ms else 0.0,
            "later_ms": statistics.median(draw_ms[1:]) if len(draw_ms) > 1 else 0.0, "sample_ms": sampler / max(samples, 1) * 1000 * 3}


def main() -> int:
    from magics.monitor import _cgroup_opener
    if os.geteuid() != 0 or _cgroup_opener() is None:
        print("bench_monitor needs root and cgroups (the containers' groups are what it samples)")
        goal("ResourceMonitor 3 panels at 5 Hz, % of one core / 5%", None, 1.0, "not root, or no cgroups")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as tmpdir:
        engine, _ = busybox_store(Path(tmpdir))
        try:
            r = measure(engine)
        finally:
            for c in engine.containers.list(all=True):
                c.remove(force=True)
            engine.supervisor.call("shutdown")
    print(f"ResourceMonitor, 3 containers, 3 panels, 5 Hz sampling, {SECONDS:.0f} s:")
    print(f"  process CPU {r['pct'] + r['idle_pct']:.2f}% of one core, idle baseline {r['idle_pct']:.2f}%")
    print(f"  sampler thread {r['sampler_pct']:.2f}% ({r['samples']} samples, "
          f"{r['sample_ms']:.2f} ms per round of 3 containers)")
    print(f"  draw thread    {r['draw_pct']:.2f}% ({r['draws']} redraws, {r['draw_ms']:.0f} ms each on average, "
          f"{r['full_draws']} of them full; the first {r['first_ms']:.0f} ms, then a median of "
          f"{r['later_ms']:.0f} ms)")
    goal("ResourceMonitor 3 panels at 5 Hz, % of one core / 5%", r["pct"] / 5.0, 1.0,
         f"{r['pct']:.2f}% of one core; {r['draws']} redraws of {r['draw_ms']:.0f} ms, "
         f"{r['samples']} samples in {SECONDS:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
