"""ResourceMonitor's one-shot mode, its OOM mark and its moving limit line, in a real kernel.

``show_for`` must leave a PNG (not a widget) in a notebook executed headless, an OOM
kill that ends a container must be recorded from the container's state, and the
limit line must follow ``docker update``.  Checked on state: the outputs' MIME
types, the records, the plotted line's data.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import requires_cgroup, requires_root
from tests.integration.test_notebook_layer import execute, no_errors, store, streams  # noqa: F401 - store is a fixture

pytestmark = [pytest.mark.integration, requires_root, requires_cgroup("memory", "pids", "cpu")]

HOG = ('BEGIN { while (n < 200) { a[n++] = sprintf("%1048576s", ""); system("sleep 0.05") } '
       'system("sleep 600") }')


def test_show_for_leaves_a_png_and_marks_the_oom_kill(store):
    outputs = execute([
        "%load_ext sandbox",
        f"from magics import ResourceMonitor\nimport json, time\nHOG = {HOG!r}\n"
        "c = %docker run -d --name hog --memory 24m --memory-swap 24m busybox awk {json.dumps(HOG)}\n"
        "mon = ResourceMonitor(c, ['memory'], autostart=False)\n"
        "t0 = time.monotonic()\nmon.show_for(60)\nwaited = time.monotonic() - t0",
        "state = c.reload().attrs['State']\n"
        "events = [d for d in mon.data if d.get('event') == 'oom']\n"
        "print(json.dumps([state['OOMKilled'], state['ExitCode'], len(events), "
        "events and events[0]['exit_code'], waited, mon.running, len(mon.data)]))",
    ])
    no_errors(outputs)
    shown = [o for o in outputs[1] if o["output_type"] == "display_data"]
    assert len(shown) == 1, outputs[1]
    data = shown[0]["data"]
    assert "image/png" in data and "application/vnd.jupyter.widget-view+json" not in data
    oom, code, events, event_code, waited, running, samples = json.loads(streams(outputs[2], "stdout"))
    assert oom and code == 137
    assert events == 1 and event_code == 137
    assert waited < 30 and not running and samples >= 5     # it ended with the container, not at 60 s


def test_limit_line_follows_an_update():
    from magics.monitor import plot_stats
    rows = [{"t": t / 5, "name": "c", "memory": 10 * 2**20, "memory_limit": (48 if t < 5 else 128) * 2**20,
             "cpu": None if t == 0 else 50.0, "cpu_limit": 50.0, "pids": 3, "pids_limit": None,
             "oom_kills": 0} for t in range(10)]
    fig = plot_stats(rows, ["memory", "cpu", "pids"])
    memory, cpu, pids = fig.axes
    dashed = [line for line in memory.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and sorted(set(dashed[0].get_ydata())) == [48.0, 128.0]
    assert [line.get_linestyle() for line in cpu.get_lines()].count("--") == 1
    assert [line.get_linestyle() for line in pids.get_lines()].count("--") == 0    # no limit, no line
    assert memory.get_ylim()[0] == 0 and memory.get_ylim()[1] >= 128
    assert fig._repr_png_().startswith(b"\x89PNG")


def test_live_plot_blits_the_lines_and_redraws_the_axes_only_when_they_move():
    """The live figure draws its axes once and only its lines after that, until a limit moves;
    what it shows is what a full draw of the same state shows (but where a line crosses the
    legend or a grid line, which the blit draws in another order)."""
    import io

    import numpy as np
    from PIL import Image

    from magics.monitor import LivePlot, _encode_png

    def rows(n, cpu):
        return [{"t": t / 5, "name": name, "memory": (10 + t % 3) * 2**20, "memory_limit": 64 * 2**20,
                 "cpu": cpu, "cpu_limit": 50.0, "pids": 3, "pids_limit": 100, "oom_kills": 0}
                for t in range(n) for name in ("a", "b")]

    plot = LivePlot(["memory", "cpu", "pids"], ["a", "b"])
    plot.update(rows(10, 20.0))
    first = plot.png()
    plot.update(rows(20, 20.0))
    second = plot.png()
    assert plot.full_draws == 1 and first != second      # new points, the same axes: blitted
    assert plot.figure.axes[0].get_xlim() == (0.0, 30.0)
    plot.update(rows(20, 90.0))                          # the CPU panel's top moves: axes redrawn
    blitted = np.asarray(Image.open(io.BytesIO(plot.png())))
    assert plot.full_draws == 2
    for artist in plot._animated:
        artist.set_animated(False)
    plot.canvas.draw()
    full = np.asarray(Image.open(io.BytesIO(_encode_png(plot.canvas))))
    assert blitted.shape == full.shape and blitted.shape[1] == 576
    assert (blitted != full).any(axis=2).mean() < 0.01
