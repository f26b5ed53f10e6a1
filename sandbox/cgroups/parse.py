"""Parsers for the kernel's cgroup file formats.

cgroup-v2.rst "Interface Files -- Conventions" names the formats: "flat keyed"
(``key value`` per line: memory.stat, cpu.stat, memory.events, cgroup.events)
and "nested keyed" (``8:0 rbytes=1 wbytes=2``: io.stat).  cgroup v1's blkio
uses its own ``8:0 Read 4096`` lines (cgroup-v1/blkio-controller.rst), and
cpusets use the "list format" ``0-3,7`` (cgroup-v1/cpusets.rst).
"""

from __future__ import annotations

import re


def flat_keyed(text: str | None) -> dict[str, int]:
    """``key value`` lines as a dict; lines whose value is not a number are skipped."""
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def io_stat(text: str | None) -> tuple[int, int]:
    """Bytes read and written, summed over devices, from v2 ``io.stat``."""
    read = written = 0
    for line in (text or "").splitlines():
        for field in line.split()[1:]:
            key, _, value = field.partition("=")
            if key == "rbytes" and value.isdigit():
                read += int(value)
            elif key == "wbytes" and value.isdigit():
                written += int(value)
    return read, written


def blkio_service_bytes(text: str | None) -> tuple[int, int]:
    """Bytes read and written from a v1 ``blkio.*io_service_bytes*`` file.

    Lines are ``MAJ:MIN Read|Write|Sync|Async|Discard|Total N`` plus a final
    ``Total N``; only the per-device Read and Write lines are summed.
    """
    read = written = 0
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2].isdigit():
            if parts[1] == "Read":
                read += int(parts[2])
            elif parts[1] == "Write":
                written += int(parts[2])
    return read, written


_LIST = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


def cpu_list(text: str) -> set[int]:
    """The set of numbers in a cpuset list ("0-2,7" -> {0, 1, 2, 7}).

    Raises ValueError for anything else (including a descending range).
    """
    text = text.strip()
    if not text:
        return set()
    if not _LIST.match(text):
        raise ValueError(f"not a cpu list: {text!r}")
    out: set[int] = set()
    for item in text.split(","):
        first, _, last = item.partition("-")
        lo, hi = int(first), int(last or first)
        if hi < lo:
            raise ValueError(f"descending range {item!r}")
        out.update(range(lo, hi + 1))
    return out


def cpu_max(text: str | None) -> tuple[int | None, int | None]:
    """(quota, period) from v2 ``cpu.max`` ("max 100000" -> (None, 100000))."""
    parts = (text or "").split()
    if len(parts) != 2:
        return None, None
    quota = None if parts[0] == "max" else int(parts[0])
    return quota, int(parts[1])
