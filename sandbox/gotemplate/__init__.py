"""The part of Go's text/template that ``inspect -f`` and ``--format`` users type.

``docker inspect -f '{{.State.Running}}'``, ``docker ps --format '{{.Names}}'``
and ``docker images --format '{{json .}}'`` hand a Go template to
https://pkg.go.dev/text/template; this module gives the same output for the
same template on our dicts (and objects, through ``getattr``)::

    render("{{.Config.Cmd}}", info)                      -> "[sh -c echo hi]"
    render("{{range $k, $v := .Labels}}{{$k}}={{$v}} {{end}}", info)
    render("{{if .State.Running}}up{{else}}down{{end}}", info)
    render("{{json .Config}}", info)                     -> compact JSON, keys sorted

Supported: text, ``{{- -}}`` trimming, ``{{/* comments */}}``, field chains,
``$``/``$x := ...``/``$x = ...``, pipelines, parenthesised pipelines,
``if``/``else if``/``with``/``range`` with ``else``, Go's built-in functions
(``index len not and or eq ne lt le gt ge print printf println``) and Docker's
(``json join split upper lower title truncate pad``).  ``define``,
``template`` and ``block`` are refused.  The ``table`` prefix and the ``\\t``
escapes of ``--format`` are the caller's business, as in the docker CLI.

Values print like Go's ``%v``: lists as ``[a b]``, dicts as ``map[k:v]`` with
sorted keys, booleans as ``true``, None as ``<nil>`` and a missing key as
``<no value>``.  Errors are :class:`SandboxError` with Go's wording.

The parts, one module each: :mod:`.lexer`, :mod:`.parser` (into the tree of
:mod:`.nodes`), :mod:`.executor`, :mod:`.functions` (the built-ins) and
:mod:`.values` (Go's printing and truth).
"""

from __future__ import annotations

from typing import Any

from .executor import Executor
from .parser import Parser
from .values import format_value

__all__ = ["Template", "format_value", "render"]


def render(template: str, data: Any) -> str:
    """Parse ``template`` and execute it on ``data``; raise SandboxError on either failing."""
    return Template(template).render(data)


class Template:
    """A parsed template; parse once, render each row (``ps --format`` over many containers)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._nodes = Parser(source).parse()

    def render(self, data: Any) -> str:
        out: list[str] = []
        Executor(self.source, data).run(self._nodes, data, out)
        return "".join(out)
