"""Rich displays for notebooks: HTML and plain text for images, containers, layers,
diffs, history and stats.

Jupyter shows ``_repr_html_`` when an object is a cell's value; everything
else (a terminal, a saved notebook read as text, a test) gets ``__repr__`` or
``text()``.  The HTML is plain tables and ``<details>`` trees with inline
styles: no JavaScript, nothing fetched, so it renders the same in JupyterLab,
Notebook 7, VS Code and on nbviewer, and survives being saved.

The list and dict types here (:class:`Diff`, :class:`History`, :class:`Stats`)
subclass ``list``/``dict``: code that used the plain values keeps working.
An image's own display is :mod:`sandbox.image.views` (the image store sits
below this module); the table primitives are :mod:`sandbox.tables`.
"""

from __future__ import annotations

from typing import Any

from .humanize import size as human_size
from .image.views import image_html, image_rows, image_text
from .tables import TABLE_STYLE as _TABLE, TD_STYLE as _TD, TH_STYLE as _TH, esc, html_table as table, text_table
KIND_COLORS = {"A": "#1a7f37", "C": "#9a6700", "D": "#cf222e"}
KIND_WORDS = {"A": "added", "C": "changed", "D": "deleted"}


def kind_badge(kind: str) -> str:
    color = KIND_COLORS.get(kind, "#555")
    return f'<span style="color:{color};font-weight:bold" title="{KIND_WORDS.get(kind, kind)}">{esc(kind)}</span>'


# ---------------------------------------------------------------------------- containers

def container_rows(c: Any) -> list[tuple[str, str]]:
    a = c.attrs
    st = a.get("State") or {}
    status = st.get("Status", "")
    if status == "exited":
        status += f" ({st.get('ExitCode')})" + (" OOM-killed" if st.get("OOMKilled") else "")
    cfg = a.get("Config") or {}
    cmd = " ".join((cfg.get("Entrypoint") or []) + (cfg.get("Cmd") or []))
    return [("Name", a.get("Name", "").lstrip("/")), ("Id", a.get("Id", "")[:12]),
            ("Image", (a.get("Sandbox") or {}).get("ImageRef") or a.get("Image", "")),
            ("Status", status), ("Pid", str(st.get("Pid") or "")), ("Command", cmd),
            ("Started", st.get("StartedAt", "")), ("Finished", st.get("FinishedAt", ""))]


def container_html(c: Any) -> str:
    body = "".join(f'<tr><th style="{_TH}">{esc(k)}</th><td style="{_TD}">{esc(v)}</td></tr>'
                   for k, v in container_rows(c))
    return f'<table style="{_TABLE}"><caption style="text-align:left"><b>Container</b></caption>{body}</table>'


# ---------------------------------------------------------------------------- trees of changes

def tree_html(changes: list[tuple[str, str]], *, open_depth: int = 1, limit: int = 2000) -> str:
    """Changes as a tree of ``<details>``: directories fold, each entry says A, C or D."""
    root: dict[str, Any] = {}
    kinds: dict[str, str] = {}
    for kind, path in changes[:limit]:
        node = root
        parts = [p for p in path.split("/") if p]
        for part in parts:
            node = node.setdefault(part, {})
        kinds[path.rstrip("/") or "/"] = kind

    def render(node: dict[str, Any], prefix: str, depth: int) -> str:
        out = []
        for name in sorted(node):
            path = f"{prefix}/{name}"
            kind = kinds.get(path, "")
            label = (kind_badge(kind) + " " if kind else "") + esc(name)
            if node[name]:
                opened = " open" if depth < open_depth else ""
                out.append(f"<details{opened}><summary>{label}/</summary>"
                           f'<div style="margin-left:1.2em">{render(node[name], path, depth + 1)}</div></details>')
            else:
                out.append(f"<div>{label}</div>")
        return "".join(out)

    more = f"<div>... and {len(changes) - limit} more</div>" if len(changes) > limit else ""
    legend = " ".join(f"{kind_badge(k)} {w}" for k, w in KIND_WORDS.items())
    return (f'<div style="font-family:monospace;font-size:12px">'
            f'<div style="color:#666">{legend}</div>{render(root, "", 0) or "<i>no changes</i>"}{more}</div>')


class Diff(list):
    """``docker diff`` lines: a list of (kind, path); shows as a tree in a notebook."""

    def text(self) -> str:
        return "\n".join(f"{k} {p}" for k, p in self)

    def counts(self) -> dict[str, int]:
        out = {"A": 0, "C": 0, "D": 0}
        for k, _ in self:
            out[k] = out.get(k, 0) + 1
        return out

    def _repr_html_(self) -> str:
        c = self.counts()
        head = f"<b>Diff</b>: {c['A']} added, {c['C']} changed, {c['D']} deleted"
        return f"<div>{head}</div>" + tree_html(list(self))


# ---------------------------------------------------------------------------- history

class History(list):
    """``docker history`` rows (dicts), newest first."""

    HEADERS = ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]

    def _rows(self) -> list[list[str]]:
        from .humanize import ago
        rows = []
        for r in self:
            image_id = r["Id"] if r["Id"] == "<missing>" else r["Id"].split(":", 1)[-1][:12]
            rows.append([image_id, ago(r["Created"]) if r.get("Created") else "", r["CreatedBy"],
                         human_size(r["Size"]), r.get("Comment", "")])
        return rows

    def text(self) -> str:
        return text_table(self.HEADERS, [[c if len(c) < 60 else c[:57] + "..." for c in r] for r in self._rows()])

    def _repr_html_(self) -> str:
        return table(self.HEADERS, self._rows())


# ---------------------------------------------------------------------------- stats

class Stats(dict):
    """One ``docker stats`` sample (docker's JSON shape) with a readable display."""

    def summary(self) -> dict[str, Any]:
        from .containers.inspect import cpu_percent, memory_usage
        used, limit = memory_usage(self)
        return {"name": str(self.get("name", "")).lstrip("/"), "cpu_percent": round(cpu_percent(self), 2),
                "memory": used, "memory_limit": limit,
                "memory_percent": round(used / limit * 100, 2) if limit else 0.0,
                "pids": (self.get("pids_stats") or {}).get("current", 0)}

    def _row(self) -> list[str]:
        s = self.summary()
        return [s["name"], f"{s['cpu_percent']:.2f}%", f"{human_size(s['memory'])} / {human_size(s['memory_limit'])}",
                f"{s['memory_percent']:.2f}%", str(s["pids"])]

    HEADERS = ["NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS"]

    def text(self) -> str:
        return text_table(self.HEADERS, [self._row()])

    def _repr_html_(self) -> str:
        return table(self.HEADERS, [self._row()])


# ---------------------------------------------------------------------------- layers

class Layer:
    """One layer of an image: its place, size, the step that made it, and its changes."""

    def __init__(self, engine: Any, image: Any, index: int, created_by: str, created: str) -> None:
        self._engine = engine
        self.image = image
        self.index = index
        self.diff_id = image.diff_ids[index]
        self.chain_id = image.chain_ids[index]
        self.digest = image.layers[index].digest
        self.created_by = created_by
        self.created = created
        try:
            self.size = engine.image_store.layers.get(self.chain_id).size
        except Exception:  # noqa: BLE001 - a layer not unpacked yet: size unknown
            self.size = 0
        self._changes: Diff | None = None

    def changes(self) -> Diff:
        """What this layer adds (A), changes (C) and deletes (D) relative to the layers below.

        A whiteout is a deletion; an opaque directory deletes what the lower
        layers had in it.
        """
        if self._changes is None:
            from pathlib import Path
            from .containers import fsops
            layers = self._engine.image_store.layers
            self._engine.image_store.unpack(self.image.diff_ids, [l.digest for l in self.image.layers])
            upper = Path(layers.get(self.chain_id).path)
            lowers = [Path(layers.get(c).path) for c in reversed(self.image.chain_ids[:self.index])]
            self._changes = Diff(fsops.changes(upper, lowers))
        return self._changes

    def __repr__(self) -> str:
        return f"<Layer {self.index}: {self.diff_id[7:19]} {human_size(self.size)} {self.created_by[:50]!r}>"

    def _repr_html_(self) -> str:
        head = (f"<div><b>Layer {self.index}</b> {esc(self.diff_id[:19])} ({esc(human_size(self.size))})"
                f"<br><code>{esc(self.created_by)}</code></div>")
        return head + tree_html(list(self.changes()))


def image_layers(engine: Any, image: Any) -> list[Layer]:
    """The layers of ``image``, bottom first, each paired with the history step that made it."""
    steps = [h for h in (image.config.get("history") or []) if not h.get("empty_layer")]
    out = []
    for i in range(len(image.diff_ids)):
        step = steps[i] if i < len(steps) else {}
        out.append(Layer(engine, image, i, step.get("created_by", ""), step.get("created", "")))
    return out


__all__ = ["esc", "table", "text_table", "kind_badge", "image_rows", "image_html", "image_text",
           "container_rows", "container_html", "tree_html", "Diff", "History", "Stats", "Layer",
           "image_layers", "_TABLE", "_TD", "_TH"]
