"""Human-readable sizes and durations, the way the docker CLI prints them.

Docker uses decimal units with three significant digits ("4.26MB") and
"2 hours ago" style durations (go-units' HumanSize and HumanDuration); the labs
compare our output with Docker's, so we print the same.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False  # datetime only in parse_time: a cold `sandbox images` reads ages without it
if TYPE_CHECKING:
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
    import datetime as _dt
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


def utc_seconds(text: str) -> float | None:
    """``parse_time(text).timestamp()`` for the one form the store and Go write, without datetime.

    That form is ``2026-12-04T01:10:23.807996050Z`` (the fraction optional);
    anything else gives None, and :func:`parse_time` reads it.  ``ps`` and
    ``images`` print an age on every row, and importing datetime was a
    noticeable part of a cold command; a test holds the two to the same value.
    """
    t = text.strip()
    if len(t) < 20 or t[-1] != "Z" or t[4] + t[7] + t[10] + t[13] + t[16] != "--T::":
        return None
    frac = t[20:-1]
    if len(t) > 20 and (t[19] != "." or not frac):
        return None
    fields = (t[0:4], t[5:7], t[8:10], t[11:13], t[14:16], t[17:19])
    if not all(c in "0123456789" for c in "".join(fields) + frac):
        return None
    y, mo, d, h, mi, s = (int(f) for f in fields)
    if not (y >= 1 and 1 <= mo <= 12 and 1 <= d <= _month_days(y, mo) and h < 24 and mi < 60 and s < 60):
        return None
    micro = int(frac[:6].ljust(6, "0"))
    # in whole microseconds, then divided once: the float timedelta.total_seconds() gives
    return ((_days_since_1970(y, mo, d) * 86400 + h * 3600 + mi * 60 + s) * 10**6 + micro) / 10**6


def _month_days(y: int, m: int) -> int:
    if m == 2:
        return 29 if y % 4 == 0 and (y % 100 != 0 or y % 400 == 0) else 28
    return 30 if m in (4, 6, 9, 11) else 31


def _days_since_1970(y: int, m: int, d: int) -> int:
    """Days from 1970-01-01 to a date of the proleptic Gregorian calendar (H. Hinnant's days_from_civil)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m - 3 if m > 2 else m + 9) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def ago(text: str, now: _dt.datetime | None = None) -> str:
    """'2 hours ago' for an RFC 3339 time; 'N/A' when it is unknown."""
    when = utc_seconds(text)
    if when is None:
        parsed = parse_time(text)
        if parsed is None:
            return "N/A"
        when = parsed.timestamp()
    delta = (now.timestamp() if now is not None else time.time()) - when
    if delta < 0:
        return "Less than a second ago"
    return duration(delta) + " ago"


def shorten(text: str, n: int) -> str:
    """``text`` on one line, cut to ``n`` characters with an ellipsis."""
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[:n - 1] + "…"
