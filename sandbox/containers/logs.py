"""Container logs in Docker's ``json-file`` format, and docker's time syntax.

One JSON object per line of output::

    {"log":"hello\\n","stream":"stdout","time":"2026-11-24T10:00:00.123456789Z"}

so ``docker logs`` users find the same file they know, stdout and stderr
stay apart, and ``--since``/``--until``/``-t`` work from the timestamps.
The single-threaded supervisor is the only writer (:class:`LogWriter`);
clients read and follow the files directly (:func:`read_logs`,
:func:`follow_logs`), even while the supervisor restarts.

The size cap rotates ``container.log`` to ``container.log.1`` (and so on):
a chatty container in a class lab must not fill the disk.
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import os
import re
import time
from dataclasses import dataclass
from collections.abc import Callable, Iterator
from typing import BinaryIO

from ..errors import UsageError

DEFAULT_MAX_SIZE = 10 * 1024 * 1024
DEFAULT_MAX_FILES = 2
#: docker cuts longer lines into records of this size.
MAX_LINE = 16 * 1024


def rfc3339_nano(t: float | int) -> str:
    """``2026-11-24T10:00:00.123456789Z``; an int is nanoseconds (``time.time_ns()``)."""
    ns = t if isinstance(t, int) else int(round(t * 1e9))
    secs, frac = divmod(ns, 10**9)
    stamp = _dt.datetime.fromtimestamp(secs, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{frac:09d}Z"


@dataclass(frozen=True)
class LogRecord:
    stream: str
    data: bytes
    time: float
    time_text: str


class LogWriter:
    """Appends records for one container; keeps a partial line per stream."""

    def __init__(self, path: str | os.PathLike[str], *, max_size: int = DEFAULT_MAX_SIZE,
                 max_files: int = DEFAULT_MAX_FILES) -> None:
        self.path = os.fspath(path)
        self.max_size = max(int(max_size), 1024)
        self.max_files = max(int(max_files), 1)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self.size = os.fstat(self.fd).st_size
        self.partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}
        self.dropped_bytes = 0

    def write(self, stream: str, data: bytes, now: int | None = None) -> None:
        buf = self.partial.get(stream, b"") + data
        out = []
        while True:
            nl = buf.find(b"\n")
            if nl < 0 or nl >= MAX_LINE:
                if len(buf) >= MAX_LINE:
                    out.append(buf[:MAX_LINE])
                    buf = buf[MAX_LINE:]
                    continue
                break
            out.append(buf[:nl + 1])
            buf = buf[nl + 1:]
        self.partial[stream] = buf
        if out:
            self._emit(stream, out, now)

    def flush(self, now: int | None = None) -> None:
        for stream, buf in self.partial.items():
            if buf:
                self.partial[stream] = b""
                self._emit(stream, [buf], now)

    def close(self) -> None:
        if self.fd >= 0:
            self.flush()
            os.close(self.fd)
            self.fd = -1

    def _emit(self, stream: str, lines: list[bytes], now: int | None) -> None:
        stamp = rfc3339_nano(now if now is not None else time.time_ns())
        payload = "".join(json.dumps({"log": line.decode("utf-8", errors="replace"), "stream": stream,
                                      "time": stamp}, separators=(",", ":")) + "\n"
                          for line in lines).encode()
        if self.size + len(payload) > self.max_size and self.size > 0:
            self._rotate()
        try:
            os.write(self.fd, payload)
            self.size += len(payload)
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise
            self.dropped_bytes += len(payload)  # a full disk must not stop the container

    def _rotate(self) -> None:
        if self.max_files == 1:
            os.ftruncate(self.fd, 0)
            self.size = 0
            return
        for i in range(self.max_files - 1, 0, -1):
            src = self.path if i == 1 else f"{self.path}.{i - 1}"
            if os.path.exists(src):
                os.replace(src, f"{self.path}.{i}")
        os.close(self.fd)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self.size = 0


def parse_record(line: bytes) -> LogRecord | None:
    """One json-file line as a record; None for a torn or foreign line."""
    try:
        obj = json.loads(line)
        text = obj["time"]
        return LogRecord(obj["stream"], obj["log"].encode("utf-8", errors="replace"),
                         _parse_stamp(text), text)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _parse_stamp(text: str) -> float:
    head, _, frac = text.rstrip("Z").partition(".")
    base = _dt.datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=_dt.timezone.utc).timestamp()
    return base + (int(frac[:9].ljust(9, "0")) / 1e9 if frac else 0.0)


def _files(path: str) -> list[str]:
    rotated = []
    i = 1
    while os.path.exists(f"{path}.{i}"):
        rotated.append(f"{path}.{i}")
        i += 1
    return list(reversed(rotated)) + [path]


def _keep(r: LogRecord, stdout: bool, stderr: bool, since: float | None, until: float | None) -> bool:
    if (r.stream == "stdout" and not stdout) or (r.stream == "stderr" and not stderr):
        return False
    if since is not None and r.time < since:
        return False
    return until is None or r.time <= until


def read_logs(path: str | os.PathLike[str], *, stdout: bool = True, stderr: bool = True,
              tail: int | None = None, since: float | None = None,
              until: float | None = None) -> list[LogRecord]:
    """Every record (oldest first) that passes the filters; the last ``tail`` of them."""
    out: list[LogRecord] = []
    for name in _files(os.fspath(path)):
        try:
            with open(name, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            continue
        for line in data.split(b"\n"):
            if not line:
                continue
            r = parse_record(line)  # a torn or corrupt line is skipped, never fatal
            if r is not None and _keep(r, stdout, stderr, since, until):
                out.append(r)
    if tail is not None and tail >= 0:
        out = out[len(out) - tail:] if tail else []
    return out


def follow_logs(path: str | os.PathLike[str], *, stdout: bool = True, stderr: bool = True,
                tail: int | None = None, since: float | None = None, until: float | None = None,
                is_running: Callable[[], bool], poll_interval: float = 0.05,
                stop: object | None = None) -> Iterator[LogRecord]:
    """``docker logs -f``: what is there, then new records until the container stops.

    Follows by offset in the current file; a rotation (the inode changes) is
    noticed, the rest of the old file is read from the open descriptor, and
    reading goes on at the start of the new one.
    """
    path = os.fspath(path)
    yield from read_logs(path, stdout=stdout, stderr=stderr, tail=tail, since=since, until=until)
    followed = _Followed(path)
    try:
        while True:
            running = is_running()
            if followed.f is None and not followed.appeared():
                if not running:
                    return
                time.sleep(poll_interval)
                continue
            lines = followed.new_lines()
            if lines is not None:
                for line in lines:
                    r = parse_record(line)
                    if r is None:
                        continue
                    if until is not None and r.time > until:
                        return
                    if _keep(r, stdout, stderr, since, until):
                        yield r
                continue
            if followed.rotated():
                followed.reopen()
                continue
            if not running or (stop is not None and getattr(stop, "is_set", lambda: False)()):
                return
            if until is not None and time.time() > until:
                return
            time.sleep(poll_interval)
    finally:
        followed.close()


class _Followed:
    """The log file :func:`follow_logs` reads: its descriptor (None until the file exists) and the last line.

    The last line is kept until its newline arrives: the writer may be in
    the middle of it.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.partial = b""
        self.f: BinaryIO | None = None
        try:
            self.f = open(path, "rb")
            self.f.seek(0, os.SEEK_END)    # what was there, read_logs has given
        except FileNotFoundError:
            self.f = None

    def appeared(self) -> bool:
        """Open the file once it exists (nothing was logged yet); False while it does not."""
        try:
            self.f = open(self.path, "rb")
        except FileNotFoundError:
            return False
        return True

    def reopen(self) -> None:
        """After a rotation (the rest of the old file was read): go on at the start of the new one."""
        assert self.f is not None
        self.f.close()
        self.f = open(self.path, "rb")
        self.partial = b""

    def new_lines(self) -> list[bytes] | None:
        """The complete lines written since the last call; None when nothing was."""
        assert self.f is not None
        data = self.f.read()
        if not data:
            return None
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        return lines

    def rotated(self) -> bool:
        """The path names another file than the one open: the writer rotated it."""
        assert self.f is not None
        try:
            return os.stat(self.path).st_ino != os.fstat(self.f.fileno()).st_ino
        except FileNotFoundError:
            return False

    def close(self) -> None:
        if self.f is not None:
            self.f.close()


def format_record(record: LogRecord, *, timestamps: bool) -> bytes:
    if timestamps:
        return record.time_text.encode() + b" " + record.data
    return record.data


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration_seconds(text: str) -> float | None:
    """Go's duration syntax ("1h30m", "45s", "1.5h") in seconds; None if it is not one."""
    text = text.strip()
    if not text:
        return None
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return total if pos == len(text) else None


def parse_time(text: str, now: float | None = None) -> float:
    """docker's --since/--until: RFC 3339, a date, a Unix timestamp, or a duration ago."""
    value = text.strip()
    now = time.time() if now is None else now
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    d = parse_duration_seconds(value)
    if d is not None:
        return now - d
    t = value.replace("Z", "+00:00").replace("z", "+00:00")
    if "." in t:  # Python takes at most 6 fractional digits; docker writes 9
        head, _, rest = t.partition(".")
        frac = "".join(c for c in rest if c.isdigit())
        zone = rest[len(frac):]
        t = f"{head}.{frac[:6]}{zone}"
    try:
        parsed = _dt.datetime.fromisoformat(t)
    except ValueError:
        raise UsageError(f"invalid time value {text!r}",
                         hint="use RFC 3339 (2026-11-24T10:00:00Z), a date, a Unix timestamp, "
                              "or a duration such as 10m or 1h30m") from None
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()  # no zone: local time, as docker reads it
    return parsed.timestamp()
