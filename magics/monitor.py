"""``ResourceMonitor``: live memory, CPU and pids of containers, straight from their cgroups.

A daemon thread samples every container's cgroup (5 Hz by default) and a
second one redraws a matplotlib figure (Agg, rendered to PNG into an
ipywidgets Image) once a second, so neither a slow redraw delays a sample nor
does the kernel wait: other cells run while it plots.
The figure shows the limits as dashed lines that follow ``docker update``
and OOM kills as red marks (from the group's OOM counter, or from the
container's record, ``State.OOMKilled``, when the kill ended the container
and took its cgroup along).  The thread ends by itself when every container
it watches has stopped (one last redraw), or at ``stop()``; ``start()``
resumes.  What it measured stays in ``monitor.data`` (one dict per sample;
an OOM kill that ended a container adds one with ``"event": "oom"``), and
``plot_stats(monitor.data)`` draws the same figure again, static.

``monitor.show_for(seconds)`` is the one-shot mode for a lab cell: the live
picture while it samples, then, in the same place, a PNG of everything
measured, so a saved notebook (or one executed headless by nbclient) keeps
the picture.  ``monitor.figure()`` is that static figure.

Cost: a sample reads the container's cgroup files and nothing else (about
0.6-1 ms of CPU for one container on cgroup v1 here); a redraw gives the
lines of one kept figure their new data and blits them over axes drawn once
(``LivePlot``: about 15 ms for three panels of three containers, against
100-300 ms for a full draw, which happens again only when a panel's limits
move), at most once a second, only when there are new samples, and no more
often than ``draw_budget`` (3% of a core) allows.  ``benchmarks/bench_monitor.py``
measures it: three containers, three panels, 5 Hz, about 3.2-3.6% of one
core over 20 s (it was 5% with full redraws), nearly half of it the sampler.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterable
from typing import Any

from .views import View, _engine

METRICS = ("memory", "cpu", "pids")
_LABELS = {"memory": "memory (MiB)", "cpu": "CPU (% of one core)", "pids": "processes"}


class ResourceMonitor(View):
    def __init__(self, containers: Any, metrics: Iterable[str] = METRICS, *, interval: float = 0.2,
                 redraw: float = 1.0, engine: Any = None, autostart: bool = True,
                 draw_budget: float = 0.03) -> None:
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
        self.draw_budget = draw_budget     # the share of one core redrawing may take
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
        pause = self.redraw_every
        while sampler.is_alive():
            sampler.join(pause)
            if sampler.is_alive():
                began = time.thread_time()
                self._draw()
                # Redraw no more often than the budget allows: a plot that eats the CPU
                # would change what a cgroup lab measures (a big figure draws slower).
                pause = max(self.redraw_every, (time.thread_time() - began) / self.draw_budget)
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

    def show_for(self, seconds: float) -> None:
        """Sample for ``seconds`` (less if every container stops first), showing the live
        picture, then put a PNG of all samples in its place and stop sampling.

        Blocks the cell, as ``time.sleep`` would.  In a front end without widgets
        (nbclient, nbconvert) only the PNG is left in the cell's output.
        """
        from IPython.display import display
        handle = display(self, display_id=True)
        self.start()
        deadline = time.monotonic() + seconds
        while self.running and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        self.stop()
        figure = self.figure()
        if handle is not None:
            handle.update(figure)
        else:   # not in a notebook
            display(figure)

    def figure(self) -> Any:
        """A static figure of everything sampled so far (shows as a PNG in any notebook)."""
        return plot_stats(self.data, self.metrics, names=[c.name for c in self.containers])

    def _on_toggle(self, change: dict[str, Any]) -> None:
        if change["new"] == "stopped" and self.running:
            self._stop.set()
        elif change["new"] == "running" and not self.running:
            self.start()

    # -- sampling --------------------------------------------------------------------------

    def _run(self) -> None:
        opener = _cgroup_opener()
        groups = {c.id: _open(opener, c.id) for c in self.containers}
        previous: dict[str, tuple[float, int]] = {}      # id -> (time, CPU ns) of its last sample
        records = {c.id: c.reload().attrs for c in self.containers}
        last_reload = time.monotonic()
        ended: set[str] = set()
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
                    if c.id not in ended and c.id in previous:
                        ended.add(c.id)
                        self._ended(c, now)
                    continue
                alive += 1
                sample = self._sample(c, rec, groups[c.id], now, previous.get(c.id))
                if sample is None:
                    # its cgroup is gone: it stopped since the last look at its record
                    records[c.id] = {**rec, "State": {**rec["State"], "Running": False}}
                    alive -= 1
                    ended.add(c.id)
                    self._ended(c, now)
                    continue
                previous[c.id] = (now, sample.pop("_cpu_ns"))
                self.data.append(sample)
            if alive == 0:
                break
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - now)))

    def _sample(self, c: Any, record: dict[str, Any], group: Any, now: float,
                previous: tuple[float, int] | None) -> dict[str, Any] | None:
        """One record from the container's cgroup files; None when its group is gone.

        Reads the group alone (no /proc/stat, no network counters, as ``docker stats``
        would): CPU is the group's CPU time over the wall time since the last sample.
        """
        try:
            if group is None or not group.exists():
                return None
            s = group.stats()
        except Exception:  # noqa: BLE001 - it ended between two reads
            return None
        cpu = None                         # no earlier sample: no CPU rate yet
        if previous is not None and now > previous[0]:
            cpu = round(max(0, s.cpu_usage_ns - previous[1]) / 1e9 / (now - previous[0]) * 100, 2)
        return {"t": round(now - self._t0, 3), "name": c.name,
                "memory": max(s.memory_current - s.memory_inactive_file, 0),   # docker stats' MEM USAGE
                "memory_limit": s.memory_limit or _host_memory(), "cpu": cpu, "cpu_limit": _cpu_limit(record),
                "pids": s.pids_current, "pids_limit": s.pids_limit, "oom_kills": s.oom_kills,
                "_cpu_ns": s.cpu_usage_ns}

    def _ended(self, container: Any, now: float) -> None:
        """A container it sampled has stopped: when the OOM killer ended it, add an ``oom`` event.

        Its cgroup (and so its OOM counter) usually goes with it before a sample
        sees the kill, so the record the supervisor wrote decides; it is written
        as the container is reaped, hence the short wait for it.
        """
        state: dict[str, Any] = {}
        deadline = time.monotonic() + 1.0
        while True:
            try:
                state = container.reload().attrs["State"]
            except Exception:  # noqa: BLE001 - removed meanwhile: nothing to tell
                return
            if not state.get("Running") or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if not state.get("OOMKilled"):
            return
        last = next((d for d in reversed(self.data) if d["name"] == container.name), None)
        if last is None:
            return
        self.data.append({**last, "t": round(now - self._t0, 3), "event": "oom",
                          "exit_code": state.get("ExitCode"), "oom_kills": (last.get("oom_kills") or 0) + 1})

    def _draw(self) -> None:
        if self.draws and len(self.data) == self._drawn:
            return   # nothing new: keep the picture (a redraw is most of the monitor's cost)
        self._drawn = len(self.data)
        if self._plot is None:
            self._plot = LivePlot(self.metrics, [c.name for c in self.containers])
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

    def __init__(self, metrics: Iterable[str], names: list[str], *, dpi: float | None = None,
                 tight: bool = True) -> None:
        self.metrics = tuple(metrics)
        self.names = list(names)
        from matplotlib.ticker import MaxNLocator
        self.figure = _figure_class()(figsize=(8, 1.8 * len(self.metrics) + 0.4), dpi=dpi)
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
        self.limits: dict[tuple[str, str], tuple[Any, Any]] = {}
        self.ooms: set[tuple[str, float]] = set()
        for metric, ax in self.axes.items():
            for name in self.names:
                (line,) = ax.plot([], [], label=name)
                self.lines[(metric, name)] = line
                self._moving(line)
            ax.set_ylabel(_LABELS[metric], fontsize=8)
            ax.tick_params(labelsize=8)
            ax.grid(alpha=0.3)
        last = self.axes[self.metrics[-1]] if self.metrics else None
        if last is not None:
            last.set_xlabel("seconds", fontsize=8)
        if self.metrics and self.names:
            self.axes[self.metrics[0]].legend(fontsize=8, loc="upper left")
        if tight:
            self.figure.tight_layout()

    def update(self, data: list[dict[str, Any]]) -> Any:
        for name in self.names:
            rows = [d for d in data if d["name"] == name and "event" not in d]
            if not rows:
                continue
            t = [d["t"] for d in rows]
            for metric, ax in self.axes.items():
                line = self.lines[(metric, name)]
                values = [d["memory"] / 2**20 for d in rows] if metric == "memory" else \
                    [_NAN if d.get(metric) is None else d[metric] for d in rows]
                line.set_data(t, values)
                if metric in ("memory", "pids", "cpu"):
                    self._limit_line(metric, name, ax, t, [_limit(metric, d) for d in rows], line.get_color())
            if "memory" in self.axes:
                self._oom_marks(name, [d for d in data if d["name"] == name])
        self._rescale(data)
        return self.figure

    def _rescale(self, data: list[dict[str, Any]]) -> None:
        for ax in self.axes.values():
            ax.relim()
            ax.autoscale_view()
            top = _top(ax)
            if top > 0:   # from 0 (a flat line is not blown up to fill the panel) to the highest point
                ax.set_ylim(0, top * 1.08)

    def _moving(self, artist: Any) -> None:
        """``artist`` changes with every update (a data line, a limit line): LivePlot blits it."""

    def _limit_line(self, metric: str, name: str, ax: Any, t: list[float], limits: list[float | None],
                    color: Any) -> None:
        """The limit as a dashed step line over time: it moves when ``docker update`` moves it."""
        if all(v is None for v in limits):
            return
        key = (metric, name)
        if key not in self.limits:
            (dashed,) = ax.plot([], [], linestyle="--", drawstyle="steps-post", color=color, alpha=0.8)
            # at the panel's right edge (x in axes units, y in data): it moves only with the limit
            label = ax.annotate("", (1.0, 0), xycoords=ax.get_yaxis_transform(), xytext=(-2, 2),
                                textcoords="offset points", ha="right", color=color, fontsize=7)
            self.limits[key] = (dashed, label)
            self._moving(dashed)
        dashed, label = self.limits[key]
        dashed.set_data(t, [float("nan") if v is None else v for v in limits])
        last = next((i for i in range(len(limits) - 1, -1, -1) if limits[i] is not None), None)
        if last is not None:
            value = limits[last]
            label.set_text(f"limit {value:.0f}" + {"memory": " MiB", "cpu": "%"}.get(metric, ""))
            label.xy = (1.0, value)

    def _oom_marks(self, name: str, rows: list[dict[str, Any]]) -> None:
        """A red line where the OOM counter of ``name`` went up, or its record says OOM-killed."""
        ax = self.axes["memory"]
        previous, marked = 0, [t for n, t in self.ooms if n == name]
        for d in rows:
            kills = d.get("oom_kills") or 0
            key = (name, d["t"])
            if kills > previous and key not in self.ooms:
                # the record's event repeats a kill the counter already showed: mark it once
                if not (d.get("event") and any(0 <= d["t"] - m <= 2.0 for m in marked)):
                    ax.axvline(d["t"], color="red", linewidth=2)
                    ax.plot([d["t"]], [d["memory"] / 2**20], marker="X", color="red", markersize=9)
                    ax.annotate("OOM kill", (d["t"], 0.5), xycoords=ax.get_xaxis_transform(),
                                xytext=(-3, 0), textcoords="offset points", ha="right", color="red", fontsize=8)
                    marked.append(d["t"])
                self.ooms.add(key)
            previous = kills

    def png(self, dpi: int = 72) -> bytes:
        import io
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=dpi)
        return buf.getvalue()


class LivePlot(StatsPlot):
    """The live monitor's figure: the axes drawn once, the lines blitted over them.

    A full draw of three panels costs 100-300 ms here, nearly all of it the
    ticks' text; the lines alone cost a few ms.  So the axes, ticks, labels and
    legend are rendered once into a background that each redraw restores
    before drawing only the moving artists (data lines and limit lines, made
    ``animated`` so a full draw leaves them out) and encoding the pixels as a
    PNG.  The background is drawn again only when a panel's limits change,
    which the live view makes rare: the time axis grows in steps (30 s, 1 min,
    2 min, ...) and each panel's top is a round number with room above its
    highest point, kept until a point passes it or all fall far below.  OOM
    marks and the limits' labels are part of the background: a new mark or
    limit, one more full draw.  ``plot_stats`` keeps the exact limits.
    """

    DPI = 72

    def __init__(self, metrics: Iterable[str], names: list[str]) -> None:
        self._animated: list[Any] = []
        super().__init__(metrics, names, dpi=self.DPI, tight=False)
        # Fixed margins, in inches, instead of tight_layout, which lays out every tick label
        # (a draw's worth of text, 100+ ms) to find about these.
        width, height = self.figure.get_size_inches()
        self.figure.subplots_adjust(left=0.8 / width, right=1 - 0.15 / width, bottom=0.45 / height,
                                    top=1 - 0.1 / height, hspace=0.15)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        self.canvas = FigureCanvasAgg(self.figure)
        self._background: Any = None
        self._drawn_key: Any = None
        self.full_draws = 0

    def _moving(self, artist: Any) -> None:
        artist.set_animated(True)
        self._animated.append(artist)

    def _rescale(self, data: list[dict[str, Any]]) -> None:
        last = max((d["t"] for d in data), default=0.0)
        right = next((step for step in _TIME_STEPS if step >= last * 1.02), None)
        if right is None:
            right = (int(last * 1.02 // 3600) + 1) * 3600.0
        first = next(iter(self.axes.values()), None)
        if first is not None and first.get_xlim() != (0.0, right):
            first.set_xlim(0.0, right)      # the panels share their time axis
        for ax in self.axes.values():
            want, (bottom, top) = _top(ax) * 1.08, ax.get_ylim()
            # Hysteresis: a top that still fits stays (memory wobbling about a round number would
            # redraw the axes at every other redraw); a new one leaves room to grow.
            if bottom != 0.0 or want > top or top > 3 * want:
                ax.set_ylim(0.0, _nice_ceiling(want * 1.2))

    def png(self, dpi: int = DPI) -> bytes:
        key = (tuple((ax.get_xlim(), ax.get_ylim()) for ax in self.axes.values()), len(self.ooms),
               tuple((label.get_text(), label.xy) for _, label in self.limits.values()))
        if key != self._drawn_key or self._background is None:
            self.canvas.draw()          # leaves the animated artists out
            self._background = self.canvas.copy_from_bbox(self.figure.bbox)
            self._drawn_key = key
            self.full_draws += 1
        else:
            self.canvas.restore_region(self._background)
        for artist in self._animated:
            artist.axes.draw_artist(artist)
        return _encode_png(self.canvas)


#: The live time axis's right ends, in seconds; past the last, whole hours.
_TIME_STEPS = (30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a power of ten that is >= value (1 for <= 0)."""
    import math
    if not value > 0 or not math.isfinite(value):
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if m * power >= value * (1 - 1e-9))


def _encode_png(canvas: Any) -> bytes:
    """The canvas's pixels as a PNG, without a figure draw: RGB (the figure is opaque) at a low
    zlib level (a few KB more per picture, a third of the time; the picture goes to a browser)."""
    import io
    from PIL import Image
    width, height = canvas.get_width_height(physical=True)
    image = Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="png", compress_level=1)
    return buf.getvalue()


def plot_stats(data: list[dict[str, Any]], metrics: Iterable[str] = METRICS, *,
               names: list[str] | None = None) -> Any:
    """A matplotlib Figure of recorded samples: one panel per metric, one line per container,
    limits dashed, OOM kills marked.  Works on ``monitor.data`` or any list of such records."""
    names = names or sorted({d["name"] for d in data})
    return StatsPlot(metrics, names).update(data)


_NAN = float("nan")
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


def _cgroup_opener() -> Any:
    """The engine's way to a container's cgroup, looked up once; None without cgroups."""
    try:
        from sandbox import cgroups
        return cgroups.cgroup_opener()
    except Exception:  # noqa: BLE001 - no cgroup file system: nothing to sample
        return None


def _top(ax: Any) -> float:
    """The highest finite value any line of ``ax`` shows (0 when none)."""
    import math
    values = (float(v) for line in ax.get_lines() for v in line.get_ydata())
    return max((v for v in values if math.isfinite(v)), default=0.0)


def _open(opener: Any, cid: str) -> Any:
    try:
        return opener(cid) if opener is not None else None
    except Exception:  # noqa: BLE001 - no cgroups here: the container cannot be sampled
        return None


def _cpu_limit(record: dict[str, Any]) -> float | None:
    """The container's CPU quota in % of one core (--cpus, or --cpu-quota/--cpu-period), None if none.

    From its record, which the sampler reloads every second, so ``docker update`` shows."""
    host = record.get("HostConfig") or {}
    if host.get("NanoCpus"):
        return round(host["NanoCpus"] / 1e7, 2)
    quota, period = host.get("CpuQuota") or 0, host.get("CpuPeriod") or 100_000
    return round(quota / period * 100, 2) if quota > 0 else None


def _limit(metric: str, d: dict[str, Any]) -> float | None:
    """The sample's limit in the plot's unit, or None when unlimited."""
    if metric == "cpu":
        return d.get("cpu_limit")
    if metric == "memory":
        limit = d.get("memory_limit")
        return limit / 2**20 if limit and limit < _host_memory() else None
    return d.get("pids_limit") or None


@functools.lru_cache(maxsize=1)
def _host_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            return int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 1 << 62
