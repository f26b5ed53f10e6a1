"""``check(...)``: how a lab answers a student's exercise.

``check("what is checked", condition, hint)`` evaluates ``condition`` (a value
or a function; an exception counts as "not yet" and its message is shown) and
returns a :class:`Check`: it shows as a green ✓ or as a red ✗ with the hint,
and is truthy only when the answer is right, so a lab's own solution cell can
``assert check(...)``.  A placeholder ``...`` left in an exercise reads as
"not answered yet", never as an error.
"""

from __future__ import annotations

import html
from typing import Any


class Check:
    def __init__(self, label: str, ok: bool, detail: str = "") -> None:
        self.label, self.ok, self.detail = label, ok, detail

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return f"✓ {self.label}" if self.ok else f"✗ {self.label}: {self.detail}"

    def _repr_html_(self) -> str:
        if self.ok:
            return f'<div style="color:#1a7f37"><b>✓</b> {html.escape(self.label)}</div>'
        return (f'<div style="color:#cf222e"><b>✗</b> {html.escape(self.label)}: '
                f'<span style="color:#444">{html.escape(self.detail)}</span></div>')


_UNSET = object()


def check(label: str, condition: Any, hint: str = "", *, answer: Any = _UNSET) -> Check:
    """✓ when ``condition`` (a value, or a function called now) is true; else ✗ with ``hint``.

    ``answer`` is the student's variable: while it still holds ``...`` the check
    says "not answered yet" instead of evaluating anything.
    """
    if answer is Ellipsis:
        return Check(label, False, "not answered yet: replace the ... in the cell above")
    try:
        value = condition() if callable(condition) else condition
    except Exception as e:  # noqa: BLE001 - a student's half-finished answer may raise anything
        return Check(label, False, f"{hint} (it raised {type(e).__name__}: {e})" if hint
                     else f"it raised {type(e).__name__}: {e}")
    if value is Ellipsis:
        return Check(label, False, "not answered yet: replace the ... " + (f"({hint})" if hint else ""))
    return Check(label, bool(value), hint or "not yet")

