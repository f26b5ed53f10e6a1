"""Views of images and containers built from core ipywidgets: layers, a container's diff,
its namespaces.

Every view is a small class holding an ipywidgets box (``.widget``); showing
the view shows the box.  Its display bundle also carries a static HTML copy
(``text/html``), so a saved notebook on nbviewer, or a front end without the
widget manager, still shows the content.  Trees are HTML ``<details>``
elements: they fold and unfold in every front end without any JavaScript of
ours and nothing fetched from the web.
"""

from __future__ import annotations

import os
from typing import Any

from sandbox.display import esc, table, tree_html
from sandbox.humanize import shorten as _short
from sandbox.humanize import size as human_size


def refresh_button(callback: Any) -> Any:
    """The small "refresh" button the views share."""
    import ipywidgets as w
    button = w.Button(description="refresh", icon="refresh", layout=w.Layout(width="100px"))
    button.on_click(lambda _: callback())
    return button


def _engine(engine: Any) -> Any:
    if engine is not None:
        return engine
    from sandbox.engine import Engine
    return Engine()


class View:
    """A widget with a static HTML fallback in its display bundle."""

    widget: Any

    def static_html(self) -> str:
        return ""

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = self.widget._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        data = dict(data)
        data["text/html"] = self.static_html()
        return data


# ---------------------------------------------------------------------------- layers

class LayerExplorer(View):
    """The layers of an image with the step that made each and its size; choose a layer to see
    the files it added (A), changed (C) and deleted (D) as a tree.  ``compare=`` a second image
    lists both side by side and marks the layers they share."""

    def __init__(self, image: Any, compare: Any = None, *, engine: Any = None) -> None:
        import ipywidgets as w
        self.engine = _engine(engine)
        self.image = self._get(image)
        self.other = self._get(compare) if compare is not None else None
        self.layers = self.engine.images.layers(self.image.id)
        shared = set(self.other.chain_ids) if self.other is not None else set()
        self.shared = [l.chain_id in shared for l in self.layers]
        options = []
        for layer, is_shared in zip(self.layers, self.shared):
            mark = "= " if is_shared else ""
            label = f"{mark}{layer.index}: {human_size(layer.size):>8}  {_short(layer.created_by, 60)}"
            options.append((label, layer.index))
        self.select = w.Select(options=options, rows=min(max(len(options), 3), 12),
                               layout=w.Layout(width="48%"))
        self.tree = w.HTML(layout=w.Layout(width="52%", max_height="420px", overflow="auto"))
        self.header = w.HTML(self._header())
        self.compare_table = w.HTML(self._compare_html() if self.other is not None else "")
        self.select.observe(lambda change: self.show(change["new"]), names="value")
        self.widget = w.VBox([self.header, w.HBox([self.select, self.tree]), self.compare_table])
        if self.layers:
            self.select.value = len(self.layers) - 1
            self.show(len(self.layers) - 1)

    def _get(self, image: Any) -> Any:
        return self.engine.images.get(image) if isinstance(image, str) else image

    def _header(self) -> str:
        name = ", ".join(self.image.tags) or self.image.short_id
        total = sum(l.size for l in self.layers)
        return (f"<b>{esc(name)}</b>: {len(self.layers)} layers, {esc(human_size(total))} unpacked"
                + (f"; <code>=</code> marks layers shared with <b>{esc(', '.join(self.other.tags) or self.other.short_id)}</b>"
                   if self.other is not None else ""))

    def show(self, index: int) -> None:
        """Show layer ``index``'s changes in the tree, and the whiteouts its tar holds."""
        layer = self.layers[index]
        head = (f"<div><b>layer {layer.index}</b> <code>{esc(layer.diff_id[:19])}</code> "
                f"{esc(human_size(layer.size))}<br><code>{esc(_short(layer.created_by, 120))}</code></div>")
        self.tree.value = head + self._markers_html(layer) + tree_html(list(layer.changes()))

    def markers(self, index: int) -> tuple[list[str], list[str]]:
        """Layer ``index``'s deletions as its tar records them: (``.wh.NAME`` whiteout entries,
        directories with an opaque ``.wh..wh..opq`` marker); read from the stored blob."""
        import tarfile
        from sandbox.image.tarlayer import OPAQUE_MARKER, WHITEOUT_PREFIX, open_layer
        layer = self.layers[index]
        whiteouts: list[str] = []
        opaque: list[str] = []
        with open(self.engine.store.blob_path(layer.digest), "rb") as blob, \
                tarfile.open(fileobj=open_layer(blob), mode="r|") as tar:
            for member in tar:
                base = member.name.rstrip("/").rpartition("/")[2]
                if base == OPAQUE_MARKER:
                    opaque.append(member.name.rpartition("/")[0] + "/")
                elif base.startswith(WHITEOUT_PREFIX):
                    whiteouts.append(member.name)
        return whiteouts, opaque

    def _markers_html(self, layer: Any) -> str:
        try:
            whiteouts, opaque = self.markers(layer.index)
        except Exception:  # noqa: BLE001 - a blob that cannot be read here: the tree still shows
            return ""
        if not whiteouts and not opaque:
            return ""
        parts = []
        if whiteouts:
            parts.append(f"{len(whiteouts)} whiteout{'s' if len(whiteouts) > 1 else ''} "
                         + ", ".join(f"<code>{esc(w)}</code>" for w in whiteouts[:8])
                         + (" ..." if len(whiteouts) > 8 else ""))
        if opaque:
            parts.append("opaque " + ", ".join(f"<code>{esc(d)}</code>" for d in opaque[:8])
                         + (" ..." if len(opaque) > 8 else ""))
        return f'<div style="color:#666">in the layer\'s tar: {"; ".join(parts)}</div>'

    def _compare_html(self) -> str:
        assert self.other is not None
        left = self.layers
        right = self.engine.images.layers(self.other.id)
        rows = []
        for i in range(max(len(left), len(right))):
            a = left[i] if i < len(left) else None
            b = right[i] if i < len(right) else None
            same = a is not None and b is not None and a.chain_id == b.chain_id
            rows.append([str(i), _short(a.created_by, 50) if a else "", "shared" if same else "",
                         _short(b.created_by, 50) if b else ""])
        names = [", ".join(x.tags) or x.short_id for x in (self.image, self.other)]
        return table(["#", names[0], "", names[1]], rows)

    def static_html(self) -> str:
        rows = [[str(l.index), ("= " if s else "") + human_size(l.size), _short(l.created_by, 80)]
                for l, s in zip(self.layers, self.shared)]
        return self.header.value + table(["layer", "size", "created by"], rows) + self.tree.value \
            + self.compare_table.value


# ---------------------------------------------------------------------------- a container's diff

class DiffView(View):
    """A container's writable layer as a tree (``docker diff``), with a refresh button."""

    def __init__(self, container: Any, *, engine: Any = None) -> None:
        import ipywidgets as w
        self.engine = _engine(engine)
        self.container = self.engine.containers.get(container) if isinstance(container, str) else container
        self.tree = w.HTML()
        self.button = refresh_button(self.refresh)
        self.widget = w.VBox([self.button, self.tree])
        self.changes: Any = []
        self.refresh()

    def refresh(self) -> None:
        self.changes = self.container.changes()
        c = self.changes.counts()
        self.tree.value = (f"<b>{esc(self.container.name)}</b>: {c['A']} added, {c['C']} changed, "
                           f"{c['D']} deleted (the init layer's /etc/hosts and mount points are not shown)"
                           '<div style="color:#666">read from the container\'s writable layer: a deletion '
                           "(D) is a whiteout there, an opaque directory deletes what the image had in it</div>"
                           + tree_html(list(self.changes)))

    def static_html(self) -> str:
        return self.tree.value


# ---------------------------------------------------------------------------- namespaces

NAMESPACES = [
    ("mnt", "mount points: the container sees its own root file system"),
    ("uts", "host name and domain name"),
    ("ipc", "System V IPC and POSIX message queues"),
    ("pid", "process ids: the container's first process is PID 1"),
    ("net", "network devices, addresses, routes, ports, firewall"),
    ("user", "user and group ids (root inside can be nobody outside)"),
    ("cgroup", "the view of /proc/self/cgroup: the container's cgroup looks like the root"),
    ("time", "CLOCK_MONOTONIC and CLOCK_BOOTTIME offsets"),
]


def namespace_table(pid: int, reference_pid: int | None = None) -> list[dict[str, Any]]:
    """For each namespace type: this process's inode, the reference's (default: ours), shared or not."""
    ref = reference_pid or os.getpid()
    rows = []
    for name, what in NAMESPACES:
        try:
            mine = os.readlink(f"/proc/{pid}/ns/{name}")
            theirs = os.readlink(f"/proc/{ref}/ns/{name}")
        except OSError:
            continue
        rows.append({"namespace": name, "host": theirs, "container": mine, "isolated": mine != theirs,
                     "isolates": what})
    return rows


class NamespaceView(View):
    """Which namespaces processes share, drawn: one column per process, one row per namespace type;
    a cell has the colour of the first column in its namespace (grey: the host's), so a cell coloured
    like another column is that column's namespace, shared.

    ``NamespaceView(c)`` puts a container's first process beside this notebook's kernel (the host);
    ``NamespaceView(a, b, pids={"unshare": 1234})`` puts several side by side, containers (or their
    names) and any host processes by pid.  ``rows`` compares the first container with the host, and
    ``inodes`` holds each column's namespace ids.  The picture is a PNG in the widget and in the
    static HTML, so a saved notebook shows it too; ``figure()`` returns it as a matplotlib Figure.
    """

    def __init__(self, *containers: Any, pids: dict[str, int] | None = None, engine: Any = None) -> None:
        import ipywidgets as w
        self.engine = _engine(engine)
        self.containers = [self.engine.containers.get(c) if isinstance(c, str) else c for c in containers]
        self.container = self.containers[0] if self.containers else None
        self.pids = dict(pids or {})
        self.html = w.HTML()
        self.picture = w.Image(format="png", layout=w.Layout(max_width="900px"))   # as the monitor: not stretched
        self.button = refresh_button(self.refresh)
        self.widget = w.VBox([self.button, self.picture, self.html])
        self.rows: list[dict[str, Any]] = []
        self.columns: list[tuple[str, int | None]] = []
        self.inodes: dict[str, list[str | None]] = {}
        self.png = b""
        self.refresh()

    def _columns(self) -> list[tuple[str, int | None]]:
        cols: list[tuple[str, int | None]] = [("host (this kernel)", os.getpid())]
        for c in self.containers:
            c.reload()
            running = bool(c.pid) and bool(c.attrs["State"].get("Running"))
            cols.append((c.name if running else f"{c.name} (not running)", c.pid if running else None))
        cols += [(label, pid) for label, pid in self.pids.items()]
        return cols

    def refresh(self) -> None:
        """Read every column's /proc/PID/ns/* again and redraw."""
        self.columns = self._columns()
        self.inodes = {}
        for kind, _ in NAMESPACES:
            ids = [_ns_id(pid, kind) for _, pid in self.columns]
            if any(i is not None for i in ids):
                self.inodes[kind] = ids
        first = self.columns[1][1] if len(self.columns) > 1 else None
        self.rows = namespace_table(first) if first else []
        self.png = self._png()
        self.picture.value = self.png
        self.html.value = self._table_html()

    def figure(self) -> Any:
        """The picture as a matplotlib Figure: ``display(fig)`` then ``plt.close(fig)``.

        Made through pyplot, as a lab's own figures are, so that the notebook's inline
        backend shows it as an image (a Figure made without pyplot shows as text).
        """
        import matplotlib.pyplot as plt
        kinds = list(self.inodes)
        labels = [f"{label}\npid {pid}" if pid else label for label, pid in self.columns]
        fig = plt.figure(figsize=(1.6 + 1.9 * len(self.columns), 0.45 * len(kinds) + 1.3))
        ax = fig.add_subplot()
        palette = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948",
                   "#b07aa1", "#ff9da7", "#9c755f", "#86bcb6"]
        for y, kind in enumerate(kinds):
            row = self.inodes[kind]
            for x, ns in enumerate(row):
                if ns is None:
                    face, text = "#ffffff", "?"
                else:
                    # The colour of the first column in this namespace: a shared one reads as the owner's.
                    owner = row.index(ns)
                    face = "#d0d0d0" if owner == 0 else palette[(owner - 1) % len(palette)]
                    text = ns.partition("[")[2].rstrip("]")
                ax.add_patch(_rect(x, y, face))
                ax.text(x + 0.5, y + 0.5, text, ha="center", va="center", fontsize=8, family="monospace")
        ax.set_xlim(0, len(self.columns))
        ax.set_ylim(len(kinds), 0)
        ax.set_xticks([x + 0.5 for x in range(len(self.columns))], labels, fontsize=8)
        ax.xaxis.tick_top()
        ax.set_yticks([y + 0.5 for y in range(len(kinds))], kinds, fontsize=9)
        ax.tick_params(length=0)
        for side in ax.spines.values():
            side.set_visible(False)
        ax.set_title("a row's cells of one colour are one namespace; grey: the host's", fontsize=9, pad=28)
        fig.tight_layout()
        return fig

    def _png(self) -> bytes:
        import io
        import matplotlib.pyplot as plt
        buf = io.BytesIO()
        fig = self.figure()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)  # or the inline backend shows it again at the end of the cell
        return buf.getvalue()

    def _table_html(self) -> str:
        head = ["namespace", *[esc(label) for label, _ in self.columns], "what it isolates"]
        what = dict(NAMESPACES)
        body = []
        for kind, ids in self.inodes.items():
            cells = [f"<code>{esc(i or '?')}</code>" + ("" if x == 0 or i is None or i != ids[0]
                                                           else ' <span style="color:#666">(host\'s)</span>')
                     for x, i in enumerate(ids)]
            body.append([kind, *cells, esc(what[kind])])
        return table(head, body, raw=True)

    def static_html(self) -> str:
        import base64
        img = base64.b64encode(self.png).decode()
        return f'<img alt="namespaces shared" src="data:image/png;base64,{img}">' + self.html.value


def _ns_id(pid: int | None, kind: str) -> str | None:
    """``/proc/PID/ns/KIND``'s link, e.g. ``net:[4026531840]``; None when it cannot be read."""
    if not pid:
        return None
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None


def _rect(x: int, y: int, face: str) -> Any:
    from matplotlib.patches import Rectangle
    return Rectangle((x + 0.04, y + 0.06), 0.92, 0.88, facecolor=face, edgecolor="#ffffff")
