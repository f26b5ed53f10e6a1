"""Column output like the docker CLI's tabwriter: left-aligned, three spaces between columns."""

from __future__ import annotations

from typing import IO, Any, Sequence



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
    from ..gotemplate import render
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
