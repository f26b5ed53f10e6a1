"""json-file logs: writing, rotation, reading and docker's time syntax (no root needed)."""

from __future__ import annotations

import json
import threading
import time

import pytest

from sandbox.containers import logs
from sandbox.errors import UsageError


def test_lines_split_across_chunks_and_streams_apart(tmp_path):
    w = logs.LogWriter(tmp_path / "c.log")
    w.write("stdout", b"hel")
    w.write("stderr", b"oops\n")
    w.write("stdout", b"lo\nwor")
    w.write("stdout", "ld \u00e9".encode()[:-1])
    w.write("stdout", "ld \u00e9".encode()[-1:] + b"\n")
    w.write("stdout", b"tail")
    w.close()
    recs = logs.read_logs(tmp_path / "c.log")
    assert [(r.stream, r.data) for r in recs] == [("stderr", b"oops\n"), ("stdout", b"hello\n"),
                                                  ("stdout", "world \u00e9\n".encode()), ("stdout", b"tail")]
    first = json.loads((tmp_path / "c.log").read_text().splitlines()[0])
    assert set(first) == {"log", "stream", "time"} and first["time"].endswith("Z")


def test_long_lines_are_cut(tmp_path):
    w = logs.LogWriter(tmp_path / "c.log")
    w.write("stdout", b"x" * (logs.MAX_LINE * 2 + 5) + b"\n")
    w.close()
    sizes = [len(r.data) for r in logs.read_logs(tmp_path / "c.log")]
    assert sizes == [logs.MAX_LINE, logs.MAX_LINE, 6]


def test_rotation_keeps_the_newest(tmp_path):
    w = logs.LogWriter(tmp_path / "c.log", max_size=1024, max_files=2)
    for i in range(200):
        w.write("stdout", f"line{i}\n".encode())
    w.close()
    recs = logs.read_logs(tmp_path / "c.log")
    assert recs[-1].data == b"line199\n" and len(recs) < 200
    assert [r.data for r in recs] == [f"line{i}\n".encode() for i in range(200 - len(recs), 200)]
    assert not (tmp_path / "c.log.2").exists()


def test_tail_since_until_and_torn_lines(tmp_path):
    p = tmp_path / "c.log"
    w = logs.LogWriter(p)
    for i, t in enumerate([10**18, 2 * 10**18, 3 * 10**18]):
        w.write("stdout", f"l{i}\n".encode(), now=t)
    w.close()
    with open(p, "ab") as f:
        f.write(b'{"log":"torn')
    assert [r.data for r in logs.read_logs(p, tail=2)] == [b"l1\n", b"l2\n"]
    assert [r.data for r in logs.read_logs(p, since=1.5e9, until=2.5e9)] == [b"l1\n"]
    assert logs.read_logs(tmp_path / "none.log") == []


def test_follow_sees_new_lines_and_rotation(tmp_path):
    p = tmp_path / "c.log"
    w = logs.LogWriter(p, max_size=1024, max_files=2)
    running = threading.Event()
    running.set()
    got = []

    def follow():
        for r in logs.follow_logs(p, is_running=running.is_set, poll_interval=0.01):
            got.append(r.data)

    t = threading.Thread(target=follow)
    t.start()
    time.sleep(0.05)
    for i in range(100):
        w.write("stdout", f"n{i}\n".encode())
        if i % 10 == 0:
            time.sleep(0.02)
    time.sleep(0.1)
    running.clear()
    t.join(5)
    w.close()
    assert got == [f"n{i}\n".encode() for i in range(100)]


@pytest.mark.parametrize("text", ["2026-11-24T10:00:00Z", "2026-11-24T10:00:00.123456789+01:00", "1700000000",
                                  "1700000000.5", "10m", "1h30m", "2026-11-24"])
def test_parse_time_forms(text):
    assert logs.parse_time(text, now=2e9) > 0


def test_parse_time_relative_and_bad():
    assert logs.parse_time("10m", now=1000.0) == 400.0
    with pytest.raises(UsageError):
        logs.parse_time("yesterday")
