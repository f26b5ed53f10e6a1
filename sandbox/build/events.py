"""Build progress as a stream of events: what the command prints and the notebook shows live.

One :class:`BuildEvent` per thing that happens: a step starts (``step``, with
HIT or MISS and the reason), a RUN writes output (``output``), a step ends
(``step-done``, with the layer's size and the time it took), a warning, an
error (with the Dockerfile line), and the result.  ``str(event)`` is the line
the command prints, close to Docker's classic builder so students can follow
a tutorial's output; ``event.to_dict()`` is what programs and widgets read.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: a cold command need not import typing (see sandbox/plain.py)
if TYPE_CHECKING:
    from typing import Any
from collections.abc import Callable

from ..humanize import size as human_size
from ..plain import Record


class BuildEvent(Record):
    """One thing that happened in a build (see the module doc); fields a kind does not use stay empty."""

    kind: str                 #: step | output | step-done | warning | error | result
    step: int
    total: int
    stage: str
    instruction: str
    filename: str
    line: int
    cache: str                #: HIT or MISS (step events)
    reason: str               #: why a step missed the cache
    stream: int               #: 1 stdout, 2 stderr (output events)
    text: str                 #: output text, warning or error message
    size: int | None          #: the step's layer, uncompressed bytes; None for no layer
    duration: float           #: seconds (step-done, result)
    image_id: str
    tags: list[str]
    exit_code: int | None

    #: every field but ``kind``, with its default (``tags``: a new empty list each time)
    _defaults: dict[str, Any] = {"step": 0, "total": 0, "stage": "", "instruction": "", "filename": "", "line": 0,
                                 "cache": "", "reason": "", "stream": 1, "text": "", "size": None,
                                 "duration": 0.0, "image_id": "", "tags": None, "exit_code": None}
    _fields = ("kind", *_defaults)

    def __init__(self, kind: str, **fields: Any) -> None:
        unknown = set(fields) - set(self._defaults)
        if unknown:
            raise TypeError(f"BuildEvent got unexpected fields: {', '.join(sorted(unknown))}")
        self.kind = kind
        self.__dict__.update(self._defaults, **fields)
        if self.tags is None:
            self.tags = []

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.as_dict().items() if v not in ("", None, [], 0) or k == "kind"}
        if "tags" in out:
            out["tags"] = list(out["tags"])   # a copy, as dataclasses.asdict made
        return out

    def __str__(self) -> str:
        if self.kind == "step":
            head = f"Step {self.step}/{self.total} : {self.instruction}"
            if self.cache == "HIT":
                return head + "\n ---> Using cache (HIT)"
            if self.cache == "MISS":
                return head + f"\n ---> MISS: {self.reason}"
            return head
        if self.kind == "output":
            return self.text
        if self.kind == "step-done":
            if self.instruction.startswith("FROM"):
                return f" ---> {self.image_id[7:19]}" if self.image_id else " ---> (empty: scratch)"
            layer = "no layer" if self.size is None else f"layer {human_size(self.size)}"
            return f" ---> {self.image_id[7:19] if self.image_id else ''} ({layer}, {self.duration:.2f} s)"
        if self.kind == "warning":
            return f"[Warning] {self.text}"
        if self.kind == "error":
            return f"ERROR: {self.text}"
        if self.kind == "result":
            lines = [f"Successfully built {self.image_id[7:19]}"]
            lines += [f"Successfully tagged {t}" for t in self.tags]
            return "\n".join(lines)
        return f"{self.kind}: {self.text}"


EventFn = Callable[[BuildEvent], None]
