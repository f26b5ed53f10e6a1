"""The built-in functions of a template: Go's and Docker's.

Go's ``index len not and or eq ne lt le gt ge print printf println`` and
Docker's ``json join split upper lower title truncate pad``, with Go's
argument checks and error wording.
:data:`FUNCS` maps each name to the function and its argument counts; the
parser checks names against it, the executor calls through it.
"""

from __future__ import annotations

import dataclasses
import json
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from .values import MISSING, format_value, go_type, truth

#: The longest text one function may make (and a render may write): far above any
#: ``docker inspect`` output, low enough that ``{{pad "" 9999999999 0}}`` or a
#: ``join`` with a huge separator is refused instead of filling the memory.
MAX_TEXT = 16 << 20

#: Go's fmt takes no width or precision above 1e6 (``tooLarge`` in fmt/print.go)
#: and prints ``%!(NOVERB)`` instead.
_MAX_WIDTH = 1_000_000


def _check_length(n: int) -> None:
    if n > MAX_TEXT:
        raise ValueError(f"result of {n} bytes is too long (the limit is {MAX_TEXT})")


def _want_str(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError(f"wrong type for value; expected string; got {go_type(v)}")
    return v


def _want_int(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError(f"wrong type for value; expected int; got {go_type(v)}")
    return v


def _want_list(v: Any) -> list[Any] | tuple[Any, ...]:
    if not isinstance(v, (list, tuple)):
        raise TypeError(f"wrong type for value; expected []string; got {go_type(v)}")
    return v


def _json(v: Any) -> str:
    """Go's json.Marshal: compact, map keys sorted, <>& escaped, 1.0 as 1."""
    def plain(x: Any) -> Any:
        if isinstance(x, float) and x.is_integer() and abs(x) < 1e21:
            return int(x)
        if isinstance(x, Mapping):
            return {str(k): plain(x[k]) for k in x}
        if isinstance(x, (list, tuple)):
            return [plain(e) for e in x]
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            return plain(dataclasses.asdict(x))
        if hasattr(x, "__dict__"):
            return plain({k: e for k, e in vars(x).items() if not k.startswith("_")})
        return x

    text = json.dumps(plain(v), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=str)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def _index(item: Any, *keys: Any) -> Any:
    """``index .Map "k"``, ``index .List 0``, several keys walk deeper; a missing key is <no value>."""
    for key in keys:
        if isinstance(item, Mapping):
            item = item.get(key, MISSING)
        elif isinstance(item, (list, tuple, str)):
            i = _want_int(key)
            if not 0 <= i < len(item):
                raise IndexError(f"index out of range: {i}")
            item = item[i]
        elif item is None or item is MISSING:
            raise TypeError("index of untyped nil")
        else:
            raise TypeError(f"can't index item of type {go_type(item)}")
    return item


def _len(v: Any) -> int:
    if isinstance(v, str):
        return len(v.encode())  # Go counts bytes
    if isinstance(v, (list, tuple, Mapping)):
        return len(v)
    raise TypeError(f"len of {'nil pointer' if v is None else 'type ' + go_type(v)}")


def _compare(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], bool]:
    """A Go comparison: true never equals 1, and unlike types are an error."""
    def compare(a: Any, b: Any) -> bool:
        if isinstance(a, bool) != isinstance(b, bool):
            raise TypeError("incompatible types for comparison")
        try:
            return bool(op(a, b))
        except TypeError:
            raise TypeError("incompatible types for comparison") from None
    return compare


_PRINTF_VERB = re.compile(r"%([-+# 0]*)(\d*)(?:\.(\d+))?([a-zA-Z%])")


def _printf(template: str, *args: Any) -> str:
    """Go's Sprintf for %v %s %d %q %t %f %x with flags, width and precision."""
    queue = list(args)
    made = 0

    def verb(m: re.Match[str]) -> str:
        nonlocal made
        flags, width, precision, letter = m.groups()
        if letter == "%":
            return "%"
        if int(width or 0) > _MAX_WIDTH or int(precision or 0) > _MAX_WIDTH:
            return "%!(NOVERB)"
        if not queue:
            return f"%!{letter}(MISSING)"
        text = _format_one(flags, width, precision, letter, queue.pop(0))
        made += len(text)
        _check_length(made)
        return text

    text = _PRINTF_VERB.sub(verb, template)
    if queue:
        text += "%!(EXTRA " + ", ".join(f"{go_type(a)}={format_value(a)}" for a in queue) + ")"
    return text


def _format_one(flags: str, width: str, precision: str | None, letter: str, arg: Any) -> str:
    """One printf verb applied to its argument, or Go's ``%!d(string=x)`` for a wrong type."""
    spec = "%" + flags.replace("#", "") + width + (f".{precision}" if precision else "")
    is_num = isinstance(arg, (int, float)) and not isinstance(arg, bool)
    if letter in "vs":
        return (spec + "s") % format_value(arg)
    if letter == "q" and isinstance(arg, str):
        return (spec + "s") % json.dumps(arg, ensure_ascii=False)
    if letter == "t" and isinstance(arg, bool):
        return (spec + "s") % format_value(arg)
    if letter in "dxX" and is_num and isinstance(arg, int):
        return (spec + letter) % arg
    if letter in "feEgG" and is_num:
        return (spec + letter) % arg
    return f"%!{letter}({go_type(arg)}={format_value(arg)})"


def _sprint(*args: Any) -> str:
    """Go's Sprint: a space between operands when neither is a string."""
    text = ""
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            text += " "
        text += format_value(a)
        _check_length(len(text))
    return text


def _join(items: Any, sep: Any) -> str:
    between = _want_str(sep)
    parts = [format_value(x) for x in _want_list(items)]
    _check_length(sum(map(len, parts)) + len(between) * max(len(parts) - 1, 0))
    return between.join(parts)


def _pad(s: Any, left: Any, right: Any) -> str:
    text, before, after = _want_str(s), _want_int(left), _want_int(right)
    _check_length(len(text) + max(before, 0) + max(after, 0))
    return " " * before + text + " " * after


def _and(*args: Any) -> Any:
    return next((a for a in args if not truth(a)), args[-1])


def _or(*args: Any) -> Any:
    return next((a for a in args if truth(a)), args[-1])


# name -> (function, least args, most args or -1 for any)
FUNCS: dict[str, tuple[Callable[..., Any], int, int]] = {
    "json": (_json, 1, 1),
    "upper": (lambda s: _want_str(s).upper(), 1, 1),
    "lower": (lambda s: _want_str(s).lower(), 1, 1),
    # strings.Title: capitalise each word's first letter, leave the rest alone
    "title": (lambda s: re.sub(r"(?<!\w)\w", lambda m: m.group().upper(), _want_str(s)), 1, 1),
    "join": (_join, 2, 2),
    "split": (lambda s, sep: list(_want_str(s)) if sep == "" else _want_str(s).split(_want_str(sep)), 2, 2),
    "truncate": (lambda s, n: _want_str(s)[:_want_int(n)], 2, 2),
    "pad": (_pad, 3, 3),
    "len": (_len, 1, 1),
    "index": (_index, 1, -1),
    "print": (_sprint, 0, -1),
    "println": (lambda *args: _join(list(args), " ") + "\n", 0, -1),
    "printf": (lambda fmt, *args: _printf(_want_str(fmt), *args), 1, -1),
    "not": (lambda v: not truth(v), 1, 1),
    "and": (_and, 1, -1),
    "or": (_or, 1, -1),
    "eq": (lambda a, *others: any(_compare(operator.eq)(a, b) for b in others), 2, -1),
    "ne": (_compare(operator.ne), 2, 2),
    "lt": (_compare(operator.lt), 2, 2),
    "le": (_compare(operator.le), 2, 2),
    "gt": (_compare(operator.gt), 2, 2),
    "ge": (_compare(operator.ge), 2, 2),
}
