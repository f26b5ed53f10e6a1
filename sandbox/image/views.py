"""How an image shows in a notebook: its key facts as an HTML table or as text.

Here, beside the image store, rather than in :mod:`sandbox.display`: an
:class:`~sandbox.image.images.Image` shows itself (``_repr_html_``), and the
image store sits below the display module's container views.
"""

from __future__ import annotations

from typing import Any

from ..humanize import size as human_size
from ..tables import TABLE_STYLE, TD_STYLE, TH_STYLE, esc


def image_rows(image: Any) -> list[tuple[str, str]]:
    cfg = (image.config.get("config") or {})
    rows = [("Tags", ", ".join(image.tags) or "<none>"), ("Id", image.id[:19]),
            ("Created", image.created), ("Size", human_size(image.size)),
            ("Layers", str(len(image.diff_ids)))]
    for key in ("Entrypoint", "Cmd", "WorkingDir", "User", "ExposedPorts", "Env"):
        value = cfg.get(key)
        if value:
            if key == "ExposedPorts":
                value = " ".join(value)
            elif isinstance(value, list) and key != "Env":
                value = " ".join(value)
            elif key == "Env":
                value = "\n".join(value)
            rows.append((key, str(value)))
    return rows


def image_html(image: Any) -> str:
    body = "".join(f'<tr><th style="{TH_STYLE}">{esc(k)}</th><td style="{TD_STYLE};white-space:pre">{esc(v)}</td></tr>'
                   for k, v in image_rows(image))
    return f'<table style="{TABLE_STYLE}"><caption style="text-align:left"><b>Image</b></caption>{body}</table>'


def image_text(image: Any) -> str:
    return "\n".join(f"{k + ':':<12} {v}" for k, v in image_rows(image))
