"""Build progress as a stream of events: what the command prints and the notebook shows live.

One :class:`BuildEvent` per thing that happens: a step starts (``step``, with
HIT or MISS and the reason), a RUN writes output (``output``), a step ends
(``step-done``, with the layer's size and the time it took), a warning, an
error (with the Dockerfile line), and the result.  ``str(event)`` is the line
the command prints, close to Docker's classic builder so students can follow
a tutorial's output; ``event.to_dict()`` is what programs and widgets read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any
from collections.abc import Callable

from ..humanize import size as human_size


@dataclass
class BuildEvent:
    """One thing that happened in a build (see the module doc); fields a kind does not use stay empty."""

    kind: str                 #: step | output | step-done | warning | error | result
    step: int = 0
    total: int = 0
    stage: str = ""
    instruction: str = ""
    filename: str = ""
    line: int = 0
    cache: str = ""           #: HIT or MISS (step events)
    reason: str = ""          #: why a step missed the cache
    stream: int = 1           #: 1 stdout, 2 stderr (output events)
    text: str = ""            #: output text, warning or error message
    size: int | None = None   #: the step's layer, uncompressed bytes; None for no layer
    duration: float = 0.0     #: seconds (step-done, result)
    image_id: str = ""
    tags: list[str] = field(default_factory=list)
    exit_code: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in ("", None, [], 0) or k == "kind"}

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
