"""Values as Go's fmt prints them and text/template judges them: ``%v``, truth, type names.

Shared by the executor (printing an action, ``if``, ``range``) and the
built-in functions (``print``, ``printf``, comparisons), so both print a
value alike.  :data:`MISSING` is a map key that is not there (Go's invalid
``reflect.Value``, printed ``<no value>``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any


class _Missing:
    """A map key that is not there: Go's invalid reflect.Value."""

    def __repr__(self) -> str:
        return "<no value>"


MISSING: Any = _Missing()


def format_value(v: Any) -> str:
    """``fmt.Sprint("%v", v)`` for the values JSON decodes to."""
    if v is MISSING:
        return "<no value>"
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return _format_float(v)
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(format_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "map[" + " ".join(f"{format_value(k)}:{format_value(v[k])}" for k in sorted_keys(v)) + "]"
    return str(v)


def _format_float(f: float) -> str:
    """Go's %v of a float64: shortest digits, exponent form from 1e+06 or below 1e-04."""
    if math.isnan(f) or math.isinf(f):
        return "NaN" if math.isnan(f) else ("+Inf" if f > 0 else "-Inf")
    if f == 0:
        return "0"
    d = Decimal(repr(f)).normalize()
    digits = "".join(map(str, d.as_tuple().digits))
    exp = len(digits) + int(d.as_tuple().exponent) - 1
    sign = "-" if f < 0 else ""
    if exp < -4 or exp >= 6:  # strconv.FormatFloat(f, 'g', -1, 64)
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    return format(d, "f")


def sorted_keys(m: Mapping[Any, Any]) -> list[Any]:
    """Map keys in Go's printing and range order (sorted; mixed types by text)."""
    try:
        return sorted(m)
    except TypeError:
        return sorted(m, key=str)


def go_type(v: Any) -> str:
    """The Go type name a JSON-decoded value would have, for error messages."""
    if v is None or v is MISSING:
        return "<nil>"
    for py, go in ((bool, "bool"), (int, "int"), (float, "float64"), (str, "string"),
                   ((list, tuple), "[]interface {}"), (Mapping, "map[string]interface {}")):
        if isinstance(v, py):
            return go
    return type(v).__name__


def truth(v: Any) -> bool:
    """Go's truth: false, 0, nil, and empty strings, lists and maps are false."""
    if v is None or v is MISSING:
        return False
    if isinstance(v, (bool, int, float, str, bytes, list, tuple, Mapping)):
        return bool(v)
    return True
