"""``ResourceMonitor``: live memory, CPU and pids of containers, straight from their cgroups.

A daemon thread samples every container's cgroup (5 Hz by default) and a
second one redraws a matplotlib figure (Agg, rendered to PNG into an
ipywidgets Image) once a second, so neither a slow redraw delays a sample nor
does the kernel wait: other cells run while it plots.
The figure shows the limits as dashed lines and OOM kills as red markers.
The thread ends by itself when every container it watches has stopped (one
last redraw), or at ``stop()``; ``start()`` resumes.  What it measured stays
in ``monitor.data`` (one dict per sample), and ``plot_stats(monitor.data)``
draws the same figure again, static, from those records.

Cost: a sample reads a few cgroup files (about 2 ms for one container); a
redraw updates the lines of one kept figure and renders it (about 70 ms on
a slow core, mostly text), once a second and only when there are new samples.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from .views import View, _engine

METRICS = ("memory", "cpu", "pids")
_LABELS = {"memory": "memory (MiB)", "cpu": "CPU (% of one core)", "pids": "processes"}


class ResourceMonitor(View):
    def __init__(self, containers: Any, metrics: Iterable[str] = METRICS, *, interval: float = 0.2,
                 redraw: float = 1.0, engine: Any = None, autostart: bool = True) -> None:
        import ipywidgets as w
        self.engine = _engine(engine)
        if isinstance(containers, (str, bytes)) or not isinstance(containers, Iterable):
            containers = [containers]
        self.containers = [self.engine.containers.get(c) if isinstance(c, str) else c for c in containers]
        self.metrics = tuple(metrics)
        unknown = set(self.metrics) - set(METRICS)
        if unknown:
            from sandbox.errors import UsageError
            raise UsageError(f"unknown metric(s) {', '.join(sorted(unknown))}", hint="use memory, cpu, pids")
        self.interval = interval
        self.redraw_every = redraw
        self.data: list[dict[str, Any]] = []
        self.draws = 0
        self.image = w.Image(format="png", layout=w.Layout(max_width="900px"))
        self.status = w.HTML()
        self.toggle = w.ToggleButtons(options=["running", "stopped"], value="stopped",
                                      style={"button_width": "80px"})
        self.toggle.observe(self._on_toggle, names="value")
        self.widget = w.VBox([w.HBox([self.toggle, self.status]), self.image])
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None
        self._t0 = time.monotonic()
        self._last_png = b""
        self._plot: StatsPlot | None = None
        self._drawn = 0
        if autostart:
            self.start()

    # -- control ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self) -> None:
        """Start sampling.  ``self.thread`` draws; it runs the sampler thread and outlives it,
        so joining ``self.thread`` waits for both (a slow redraw never delays a sample)."""
        if self.running:
            return
        self._stop.clear()
        self.thread = threading.Thread(target=self._draw_loop, name="sandbox-monitor", daemon=True)
        self.thread.start()
        self.toggle.value = "running"

    def _draw_loop(self) -> None:
        sampler = threading.Thread(target=self._run, name="sandbox-monitor-sampler", daemon=True)
        sampler.start()
        while sampler.is_alive():
            sampler.join(self.redraw_every)
            if sampler.is_alive():
                self._draw()
        self._draw()
        self.status.value = f"stopped after {len(self.data)} samples"
        if self.toggle.value != "stopped":
            self.toggle.value = "stopped"

    def stop(self) -> None:
        """Stop sampling and wait for the thread to end."""
        self._stop.set()
        if self.thread is not None:
            self.thread.join(timeout=5)
        if self.toggle.value != "stopped":
            self.toggle.value = "stopped"

    def _on_toggle(self, change: dict[str, Any]) -> None:
        if change["new"] == "stopped" and self.running:
            self._stop.set()
        elif change["new"] == "running" and not self.running:
            self.start()

    # -- sampling --------------------------------------------------------------------------

    def _run(self) -> None:
        from sandbox.containers.inspect import cpu_percent, memory_usage, stats_snapshot
        previous: dict[str, Any] = {}
        records = {c.id: c.reload().attrs for c in self.containers}
        last_reload = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now - last_reload >= 1.0:
                for c in self.containers:
                    try:
                        records[c.id] = c.reload().attrs
                    except Exception:  # noqa: BLE001 - removed: it is no longer running
                        records[c.id] = {**records[c.id], "State": {"Running": False}}
                last_reload = now
            alive = 0
            for c in self.containers:
                rec = records[c.id]
                if not rec["State"].get("Running"):
                    continue
                alive += 1
                try:
                    snap = stats_snapshot(rec, previous.get(c.id))
                except Exception:  # noqa: BLE001 - it ended between two reads
                    continue
                if not snap.get("sampled"):
                    # its cgroup is gone: it stopped since the last look at its record
                    records[c.id] = {**rec, "State": {**rec["State"], "Running": False}}
                    alive -= 1
                    continue
                previous[c.id] = snap
                used, limit = memory_usage(snap)
                self.data.append({
                    "t": round(now - self._t0, 3), "name": c.name, "memory": used,
                    "memory_limit": limit, "cpu": round(cpu_percent(snap), 2),
                    "pids": snap["pids_stats"].get("current") or 0,
                    "pids_limit": snap["pids_stats"].get("limit"),
                    "oom_kills": snap["memory_stats"].get("failcnt") or 0})
            if alive == 0:
                break
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - now)))

    def _draw(self) -> None:
        if self.draws and len(self.data) == self._drawn:
            return   # nothing new: keep the picture (a redraw is most of the monitor's cost)
        self._drawn = len(self.data)
        if self._plot is None:
            self._plot = StatsPlot(self.metrics, [c.name for c in self.containers])
        self._plot.update(list(self.data))
        self._last_png = self._plot.png()
        self.image.value = self._last_png
        self.draws += 1
        self.status.value = f"{len(self.data)} samples"

    def static_html(self) -> str:
        import base64
        if not self._last_png:
            return "<i>no samples yet</i>"
        return f'<img src="data:image/png;base64,{base64.b64encode(self._last_png).decode()}"/>'


class StatsPlot:
    """One figure (a panel per metric, a line per container) updated in place.

    Building a figure and laying it out costs far more than redrawing one, so
    the live monitor keeps one StatsPlot and only gives its lines new data.
    """

    def __init__(self, metrics: Iterable[str], names: list[str]) -> None:
        self.metrics = tuple(metrics)
        self.names = list(names)
        from matplotlib.ticker import MaxNLocator
        self.figure = _figure_class()(figsize=(8, 1.8 * len(self.metrics) + 0.4))
        self.axes = {}
        first = None
        for i, m in enumerate(self.metrics):
            ax = self.figure.add_subplot(len(self.metrics), 1, i + 1, sharex=first)
            first = first or ax
            ax.yaxis.set_major_locator(MaxNLocator(4))   # fewer labels: text is most of a redraw
            if i < len(self.metrics) - 1:
                ax.tick_params(labelbottom=False)
            self.axes[m] = ax
        self.lines: dict[tuple[str, str], Any] = {}
        self.limits: dict[tuple[str, str], Any] = {}
        self.ooms: set[tuple[str, float]] = set()
        for metric, ax in self.axes.items():
            for name in self.names:
                (line,) = ax.plot([], [], label=name)
                self.lines[(metric, name)] = line
            ax.set_ylabel(_LABELS[metric], fontsize=8)
            ax.tick_params(labelsize=8)
            ax.grid(alpha=0.3)
        last = self.axes[self.metrics[-1]] if self.metrics else None
        if last is not None:
            last.set_xlabel("seconds", fontsize=8)
        if self.metrics and self.names:
            self.axes[self.metrics[0]].legend(fontsize=8, loc="upper left")
        self.figure.tight_layout()

    def update(self, data: list[dict[str, Any]]) -> Any:
        for name in self.names:
            rows = [d for d in data if d["name"] == name]
            if not rows:
                continue
            t = [d["t"] for d in rows]
            for metric, ax in self.axes.items():
                line = self.lines[(metric, name)]
                values = [d["memory"] / 2**20 for d in rows] if metric == "memory" else [d[metric] for d in rows]
                line.set_data(t, values)
                limit = None
                if metric == "memory" and rows[-1].get("memory_limit") and rows[-1]["memory_limit"] < _host_memory():
                    limit = rows[-1]["memory_limit"] / 2**20
                if metric == "pids" and rows[-1].get("pids_limit"):
                    limit = rows[-1]["pids_limit"]
                if limit is not None and (metric, name) not in self.limits:
                    self.limits[(metric, name)] = ax.axhline(limit, linestyle="--", color=line.get_color(),
                                                             alpha=0.7)
                if metric == "memory":
                    previous = 0
                    for d in rows:
                        kills = d.get("oom_kills") or 0
                        if kills > previous and (name, d["t"]) not in self.ooms:
                            self.ooms.add((name, d["t"]))
                            ax.axvline(d["t"], color="red", linewidth=2)
                            ax.annotate("OOM kill", (d["t"], 0), xytext=(3, 3), textcoords="offset points",
                                        color="red", fontsize=8)
                        previous = kills
        for ax in self.axes.values():
            ax.relim()
            ax.autoscale_view()
        return self.figure

    def png(self, dpi: int = 72) -> bytes:
        import io
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=dpi)
        return buf.getvalue()


def plot_stats(data: list[dict[str, Any]], metrics: Iterable[str] = METRICS, *,
               names: list[str] | None = None) -> Any:
    """A matplotlib Figure of recorded samples: one panel per metric, one line per container,
    limits dashed, OOM kills marked.  Works on ``monitor.data`` or any list of such records."""
    names = names or sorted({d["name"] for d in data})
    return StatsPlot(metrics, names).update(data)


_FIGURE: Any = None


def _figure_class() -> Any:
    """A matplotlib Figure that shows itself as a PNG in a notebook, whatever the backend
    (a bare Figure only displays once pyplot has set up the inline backend)."""
    global _FIGURE
    if _FIGURE is None:
        from matplotlib.figure import Figure

        class StatsFigure(Figure):
            def _repr_png_(self) -> bytes:
                import io
                buf = io.BytesIO()
                self.savefig(buf, format="png", dpi=80)
                return buf.getvalue()

        _FIGURE = StatsFigure
    return _FIGURE


def _host_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            return int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 1 << 62
