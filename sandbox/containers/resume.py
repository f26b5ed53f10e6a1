"""Carrying on when the supervisor dies under a client that waits for a container.

``sandbox run`` (attached), ``sandbox wait`` and ``Container.wait()`` hold a
stream open on the supervisor until the container exits.  A supervisor killed
with ``kill -9`` closes those streams, but the container keeps running (its
exit code is held by the exit keeper, :mod:`sandbox.supervisor.keeper`), so
the honest answer is not "error" but to wait again: the next request starts a
new supervisor, which adopts the container (or records how it ended, and
removes it for ``--rm``, remembering its exit code for late waiters).

An attached client also shows the output it missed: it opens the container's
log before reconnecting (``--rm`` removes the file once the container is
gone, but an open file can still be read), skips as many bytes of each stream
as it had shown, and follows the file until the wait ends.  Output that the
dead supervisor had read but not yet logged (a line without its newline) is
lost; the stderr note says so.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
TYPE_CHECKING = False  # not typing's: a cold command need not import typing (see sandbox/plain.py)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

from ..errors import SupervisorLost
from ..supervisor.protocol import STDERR, STDOUT

OutputFn = Callable[[int, bytes], None]

#: How many times a waiter reconnects before it gives up (each is a new supervisor dying).
RETRIES = 3


class Shown:
    """Counts the bytes of each stream a client has shown, so a replay can skip them."""

    def __init__(self, on_output: OutputFn | None) -> None:
        self.on_output = on_output
        self.counts = {STDOUT: 0, STDERR: 0}

    def __call__(self, stream: int, data: bytes) -> None:
        self.counts[stream] = self.counts.get(stream, 0) + len(data)
        if self.on_output is not None:
            self.on_output(stream, data)


def wait_again(client: Any, cid: str, condition: str = "not-running") -> dict[str, Any]:
    """``wait`` on a new connection, again if the supervisor dies once more: the final object."""
    for attempt in range(RETRIES + 1):
        try:
            return dict(client.stream("wait", None, id=cid, condition=condition))
        except SupervisorLost:
            if attempt == RETRIES:
                raise
            time.sleep(0.05)
    raise AssertionError("unreachable")


def resume_attached(client: Any, cid: str, container_dir: Path, shown: Shown) -> int:
    """After the stream of an attached ``start`` broke: replay the log past ``shown``, wait, return the code."""
    print(f"sandbox: the supervisor went away while {cid[:12]} ran; a new one takes over "
          "(output it had read but not logged is lost)", file=sys.stderr, flush=True)
    try:
        log = open(container_dir / "container.log", "rb")
    except OSError:
        log = None
    box: dict[str, Any] = {}

    def waiter() -> None:
        try:
            box["final"] = wait_again(client, cid)
        except BaseException as e:  # noqa: BLE001 - raised again below, in the caller's thread
            box["error"] = e

    import threading  # here, as pathlib below: an attached run imports this module for Shown only
    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    replay = _Replay(shown)
    try:
        while True:
            done = not thread.is_alive()
            if log is not None:
                replay.feed(log.read())
            if done:
                break
            time.sleep(0.05)
    finally:
        if log is not None:
            log.close()
    if "error" in box:
        raise box["error"]
    return int(box["final"]["exit"])


class _Replay:
    """Turns json-file records into output, skipping what was shown before."""

    def __init__(self, shown: Shown) -> None:
        self.shown = shown
        self.skip = dict(shown.counts)
        self.partial = b""

    def feed(self, data: bytes) -> None:
        from .logs import parse_record
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            record = parse_record(line)
            if record is None:
                continue
            stream = STDOUT if record.stream == "stdout" else STDERR
            payload = record.data
            drop = min(self.skip.get(stream, 0), len(payload))
            self.skip[stream] = self.skip.get(stream, 0) - drop
            if payload[drop:] and self.shown.on_output is not None:
                self.shown.on_output(stream, payload[drop:])


def container_dir(root: str | os.PathLike[str], cid: str) -> Path:
    """Where a container's record and log live (see :mod:`.records`)."""
    from pathlib import Path
    return Path(root) / "containers" / cid
