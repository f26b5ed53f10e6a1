"""Tables as text and as HTML: the docker CLI's aligned columns, ``--format`` templates, and plain HTML.

A leaf of the kit (it imports nothing of it but the template engine), so
the command line, the rich displays and the views all draw tables the same
way.  The text columns are the docker CLI's tabwriter: left-aligned, three
spaces between columns.  The HTML is a plain table with inline styles: no
JavaScript, nothing fetched, so it renders the same in every front end and
in a saved notebook.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported on the cold path (see sandbox.cli)
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import IO, Any



def write_table(out: IO[str], headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Write aligned columns; an ``out`` with ``add_table`` (the notebook magics) also gets the cells,
    to show them as an HTML table."""
    capture = getattr(out, "add_table", None)
    if capture is not None:
        capture(list(map(str, headers)), [[str(c) for c in row] for row in rows])
    cells = [list(map(str, headers))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for row in cells:
        line = "".join(c.ljust(w + 3) for c, w in zip(row[:-1], widths[:-1])) + row[-1]
        out.write(line.rstrip() + "\n")


def write_format(out: IO[str], template: str, records: Sequence[dict[str, Any]],
                 headers: dict[str, str]) -> None:
    """``--format``: a Go template per record; a ``table`` prefix adds headers and columns.

    As in docker, the two-character escapes ``\\t`` and ``\\n`` typed in a shell
    become a tab and a newline.
    """
    from .gotemplate import render
    template = template.replace("\\t", "\t").replace("\\n", "\n")
    if template.startswith("table"):
        body = template[len("table"):].strip()
        head = body
        for key, title in headers.items():
            head = head.replace("{{." + key + "}}", title)
        write_table(out, head.split("\t"), [render(body, r).split("\t") for r in records])
        return
    for record in records:
        out.write(render(template, record) + "\n")


TABLE_STYLE = "border-collapse:collapse;font-family:monospace;font-size:12px"
TH_STYLE = "text-align:left;padding:2px 8px;border-bottom:1px solid #999"
TD_STYLE = "text-align:left;padding:2px 8px;vertical-align:top"


def esc(value: Any) -> str:
    import html  # here: a cold `sandbox ps` prints text only
    return html.escape("" if value is None else str(value))


def html_table(headers: list[str], rows: Iterable[Iterable[Any]], *, raw: bool = False) -> str:
    """An HTML table; cells are escaped unless ``raw``."""
    head = "".join(f'<th style="{TH_STYLE}">{esc(h)}</th>' for h in headers)
    body = "".join("<tr>" + "".join(f'<td style="{TD_STYLE}">{c if raw else esc(c)}</td>' for c in row) + "</tr>"
                   for row in rows)
    return f'<table style="{TABLE_STYLE}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def text_table(headers: list[str], rows: Iterable[Iterable[Any]]) -> str:
    """The same aligned columns as the command prints."""
    import io
    out = io.StringIO()
    write_table(out, headers, [list(r) for r in rows])
    return out.getvalue().rstrip("\n")
