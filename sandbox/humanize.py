"""Human-readable sizes and durations, the way the docker CLI prints them.

Docker uses decimal units with three significant digits ("4.26MB") and
"2 hours ago" style durations (go-units' HumanSize and HumanDuration); the labs
compare our output with Docker's, so we print the same.
"""

from __future__ import annotations

import datetime as _dt

_UNITS = ["B", "kB", "MB", "GB", "TB", "PB"]


def size(n: float) -> str:
    """4257000 -> '4.26MB' (decimal units, 3 significant digits, like go-units HumanSize)."""
    i = 0
    while n >= 1000 and i < len(_UNITS) - 1:
        n /= 1000.0
        i += 1
    text = f"{n:.3g}"
    if "e" in text:  # 3 significant digits of 999.9 round up to 1e+03
        text = f"{n:.0f}"
    return f"{text}{_UNITS[i]}"


def duration(seconds: float) -> str:
    """A duration as go-units' HumanDuration words it ('About a minute', '3 hours')."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def parse_time(text: str) -> _dt.datetime | None:
    """Parse an RFC 3339 time as images record it (nanoseconds allowed); None if empty or bad."""
    if not text:
        return None
    t = text.strip().replace("Z", "+00:00")
    if "." in t:  # Python takes at most 6 fractional digits; Go writes 9
        head, _, rest = t.partition(".")
        frac = "".join(c for c in rest if c.isdigit())
        tz = rest[len(frac):]
        t = f"{head}.{frac[:6]}{tz}"
    try:
        value = _dt.datetime.fromisoformat(t)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=_dt.timezone.utc)


def ago(text: str, now: _dt.datetime | None = None) -> str:
    """'2 hours ago' for an RFC 3339 time; 'N/A' when it is unknown."""
    when = parse_time(text)
    if when is None:
        return "N/A"
    now = now or _dt.datetime.now(_dt.timezone.utc)
    delta = (now - when).total_seconds()
    if delta < 0:
        return "Less than a second ago"
    return duration(delta) + " ago"


def shorten(text: str, n: int) -> str:
    """``text`` on one line, cut to ``n`` characters with an ellipsis."""
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[:n - 1] + "…"
