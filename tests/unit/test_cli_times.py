"""The ages ``ps`` and ``images`` print: the datetime-free reading of RFC 3339 times agrees with datetime's.

``humanize.utc_seconds`` reads the one form the store and Go write without
importing datetime (a cold command's saving); every other form goes to
``humanize.parse_time``.  Both must give the same instant, and ``ago`` the
same words as datetime arithmetic gives.
"""

from __future__ import annotations

import datetime as dt
import random

import pytest

from sandbox import humanize


def stamps(seed: int = 7, n: int = 3000) -> list[str]:
    rng = random.Random(seed)
    out = ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "1970-01-01T00:00:00Z",
           "2024-02-29T12:00:00Z", "1900-02-28T23:59:59.5Z", "2000-02-29T00:00:00.000000001Z"]
    for _ in range(n):
        when = dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(
            seconds=rng.randrange(0, 315537897599), microseconds=rng.randrange(10**6))
        text = when.strftime("%Y-%m-%dT%H:%M:%S").rjust(19, "0")
        digits = rng.randrange(0, 10)
        if digits:
            text += "." + "".join(rng.choice("0123456789") for _ in range(digits))
        out.append(text + "Z")
    return out


ODD = ["", "now", "2026-12-04T01:10:23z", "2026-12-04 01:10:23Z", "2026-12-04T01:10:23+01:00",
       "2026-12-04T01:10:23.5+01:00", "2026-12-04T01:10:23", "2026-13-04T01:10:23Z", "2026-02-30T01:10:23Z",
       "2023-02-29T00:00:00Z", "2026-12-04T24:00:00Z", "2026-12-04T01:60:00Z", "2026-12-04T01:10:60Z",
       "0000-01-01T00:00:00Z", "2026-12-04T01:10:23.Z", "2026-12-04T01:10:2３Z", "+026-12-04T01:10:23Z",
       " 2026-12-04T01:10:23Z ", "2026-12-04T01:10:23.12a4Z", "2026-12-04T01:10:23ZZ"]


@pytest.mark.parametrize("text", stamps() + ODD)
def test_utc_seconds_is_parse_time_or_steps_aside(text):
    fast, slow = humanize.utc_seconds(text), humanize.parse_time(text)
    if slow is None:
        assert fast is None
    if fast is not None:
        assert fast == slow.timestamp()


def test_the_store_form_takes_the_fast_path():
    assert humanize.utc_seconds("2026-12-04T01:10:23.807996050Z") is not None
    assert humanize.utc_seconds("2026-05-07T20:33:45Z") is not None


@pytest.mark.parametrize("text", stamps(seed=11, n=300) + ODD)
def test_ago_says_what_datetime_arithmetic_says(text):
    now = dt.datetime(2026, 12, 4, 1, 10, 23, 500000, tzinfo=dt.timezone.utc)
    when = humanize.parse_time(text)
    if when is None:
        expected = "N/A"
    else:
        delta = (now - when).total_seconds()
        expected = "Less than a second ago" if delta < 0 else humanize.duration(delta) + " ago"
    assert humanize.ago(text, now) == expected
