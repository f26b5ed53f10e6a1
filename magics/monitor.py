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

Cost: reading a few cgroup files per container per sample and one PNG
render per second: a few percent of one core (see the monitor test).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Iterable

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
        fig = plot_stats(self.data, self.metrics, names=[c.name for c in self.containers])
        import io
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        self._last_png = buf.getvalue()
        self.image.value = self._last_png
        self.draws += 1
        self.status.value = f"{len(self.data)} samples"

    def static_html(self) -> str:
        import base64
        if not self._last_png:
            return "<i>no samples yet</i>"
        return f'<img src="data:image/png;base64,{base64.b64encode(self._last_png).decode()}"/>'


def plot_stats(data: list[dict[str, Any]], metrics: Iterable[str] = METRICS, *,
               names: list[str] | None = None) -> Any:
    """A matplotlib Figure of recorded samples: one panel per metric, one line per container,
    limits dashed, OOM kills marked.  Works on ``monitor.data`` or any list of such records."""
    metrics = tuple(metrics)
    fig = _figure_class()(figsize=(8, 2.2 * len(metrics)))
    axes = [fig.add_subplot(len(metrics), 1, i + 1) for i in range(len(metrics))]
    names = names or sorted({d["name"] for d in data})
    for ax, metric in zip(axes, metrics):
        for name in names:
            rows = [d for d in data if d["name"] == name]
            if not rows:
                continue
            t = [d["t"] for d in rows]
            if metric == "memory":
                values = [d["memory"] / 2**20 for d in rows]
            else:
                values = [d[metric] for d in rows]
            (line,) = ax.plot(t, values, label=name)
            if metric == "memory":
                limit = rows[-1].get("memory_limit") or 0
                if limit and limit < _host_memory():
                    ax.axhline(limit / 2**20, linestyle="--", color=line.get_color(), alpha=0.7)
                ooms = [d["t"] for a, d in zip([{"oom_kills": 0}] + rows, rows)
                        if (d.get("oom_kills") or 0) > (a.get("oom_kills") or 0)]
                for x in ooms:
                    ax.axvline(x, color="red", linewidth=2)
                    ax.annotate("OOM kill", (x, ax.get_ylim()[1] * 0.9), color="red", fontsize=8)
            if metric == "pids" and rows[-1].get("pids_limit"):
                ax.axhline(rows[-1]["pids_limit"], linestyle="--", color=line.get_color(), alpha=0.7)
        ax.set_ylabel(_LABELS[metric], fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    if axes:
        axes[-1].set_xlabel("seconds", fontsize=8)
        if names:
            axes[0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


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
