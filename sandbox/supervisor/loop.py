"""A tiny single-threaded event loop: file descriptors, timers and child exits.

Why not asyncio: the supervisor forks containers, and a fork must happen in a
process with exactly one thread and no loop machinery half-way through a
callback.  selectors + a timer heap + SIGCHLD through ``signal.set_wakeup_fd``
is all it needs, and every callback runs to completion before the next.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import selectors
import shutil
import signal
import time
from typing import Any
from collections.abc import Callable

#: Seconds without an event before idle work runs (see run_once).
QUIET = 0.05


class Timer:
    __slots__ = ("when", "seq", "fn", "cancelled")

    def __init__(self, when: float, seq: int, fn: Callable[[], None]) -> None:
        self.when, self.seq, self.fn, self.cancelled = when, seq, fn, False

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: Timer) -> bool:
        return (self.when, self.seq) < (other.when, other.seq)


class Loop:
    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self.timers: list[Timer] = []
        self._seq = itertools.count()
        #: pid -> callback(wait status) for our children (containers, execs, health checks).
        self.children: dict[int, Callable[[int], None]] = {}
        #: Work that can wait until no client does (deleting a removed container's files).
        self.idle: list[Callable[[], None]] = []
        #: Deletes trees in another process when set (:class:`.janitor.Janitor`).
        self.janitor: Any = None
        #: The last wait for an event ended without one: idle work needs no new quiet wait.
        self._quiet = False
        self.running = True
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.add_reader(self._wake_r, self._on_wake)

    # -- registration -----------------------------------------------------------

    def add_reader(self, fd: int, fn: Callable[[], None]) -> None:
        self._set(fd, selectors.EVENT_READ, fn, None)

    def add_writer(self, fd: int, fn: Callable[[], None]) -> None:
        self._set(fd, selectors.EVENT_WRITE, None, fn)

    def remove_reader(self, fd: int) -> None:
        self._unset(fd, selectors.EVENT_READ)

    def remove_writer(self, fd: int) -> None:
        self._unset(fd, selectors.EVENT_WRITE)

    def _set(self, fd: int, event: int, reader: Any, writer: Any) -> None:
        try:
            key = self.sel.get_key(fd)
        except KeyError:
            self.sel.register(fd, event, [reader, writer])
            return
        data = key.data
        if reader is not None:
            data[0] = reader
        if writer is not None:
            data[1] = writer
        self.sel.modify(fd, key.events | event, data)

    def _unset(self, fd: int, event: int) -> None:
        try:
            key = self.sel.get_key(fd)
        except (KeyError, ValueError):
            return
        events = key.events & ~event
        key.data[0 if event == selectors.EVENT_READ else 1] = None
        if events:
            self.sel.modify(fd, events, key.data)
        else:
            self.sel.unregister(fd)

    def forget(self, fd: int) -> None:
        try:
            self.sel.unregister(fd)
        except (KeyError, ValueError):
            pass

    def when_idle(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` once nothing else is ready: off the path of the request that made it."""
        self.idle.append(fn)

    def delete_when_idle(self, path: str | os.PathLike[str]) -> None:
        """Delete the tree ``path`` as idle work, one entry of its top directory per piece.

        The pieces mostly run while the next container's init sets itself up
        (see :meth:`run_one_idle`), and the runtime answers the init between
        two pieces: one ``rmtree`` of a whole container directory (several ms
        here, most of it the kernel's) kept an init that had just asked for
        its ``pid`` ack waiting that long.  Whatever a piece fails on goes in
        the last one.
        """
        root = os.fspath(path)
        if self.janitor is not None and self.janitor.delete(root):
            return      # deleted by another process, beside this one (see .janitor)

        def first() -> None:
            try:
                left = [os.path.join(root, name) for name in os.listdir(root)]
            except OSError:
                left = []

            def piece() -> None:
                if not left:
                    shutil.rmtree(root, ignore_errors=True)   # the directory, and whatever a piece left
                    return
                entry = left.pop()
                if os.path.isdir(entry) and not os.path.islink(entry):
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(entry)
                self.idle.append(piece)
            piece()
        self.idle.append(first)

    def run_idle(self) -> None:
        """Everything queued by :meth:`when_idle` (also on the way out)."""
        while self.idle:
            safely(self.idle.pop(0))

    def run_one_idle(self) -> bool:
        """One piece of idle work, if any; whether more is left.

        The runtime calls this while it waits for a container's init to set
        itself up (milliseconds in which this loop could do nothing else), so a
        removed container's files go then, not on the path of a request.
        """
        if self.idle:
            safely(self.idle.pop(0))
        return bool(self.idle)

    def call_later(self, delay: float, fn: Callable[[], None]) -> Timer:
        t = Timer(time.monotonic() + max(delay, 0.0), next(self._seq), fn)
        heapq.heappush(self.timers, t)
        return t

    # -- running ----------------------------------------------------------------

    def _on_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        self.reap()

    def reap(self) -> None:
        """Collect every exited child; hand known ones to their callbacks."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            fn = self.children.pop(pid, None)
            if fn is not None:
                safely(lambda: fn(status))  # noqa: B023 - called at once

    def run_once(self, max_wait: float | None = None) -> None:
        now = time.monotonic()
        while self.timers and self.timers[0].cancelled:
            heapq.heappop(self.timers)
        timeout = max_wait
        if self.timers:
            wait = max(self.timers[0].when - now, 0.0)
            timeout = wait if timeout is None else min(timeout, wait)
        # Idle work waits for QUIET seconds without an event: a client that sends its
        # next request right after an answer (a loop of `run`s) is not made to wait for it.
        # Once it is quiet, the pieces follow one another until the next event (a removed
        # container's directory is a dozen pieces: see delete_when_idle).
        quiet = 0.0 if self._quiet else QUIET
        ready = self.sel.select((quiet if timeout is None else min(timeout, quiet)) if self.idle else timeout)
        self._quiet = not ready
        if not ready and self.idle:
            safely(self.idle.pop(0))   # one piece, then look again
            return
        for key, mask in ready:
            reader, writer = key.data
            if mask & selectors.EVENT_READ and reader is not None:
                safely(reader)
            if mask & selectors.EVENT_WRITE and writer is not None:
                # the reader may have unregistered the fd
                try:
                    current = self.sel.get_key(key.fd).data[1]
                except (KeyError, ValueError):
                    current = None
                if current is not None:
                    safely(current)
        now = time.monotonic()
        while self.timers and (self.timers[0].cancelled or self.timers[0].when <= now):
            t = heapq.heappop(self.timers)
            if not t.cancelled:
                safely(t.fn)

    def run(self) -> None:
        while self.running:
            self.run_once()
        self.run_idle()


def safely(fn: Callable[[], None]) -> None:
    """Run a callback; a bug in one must not take every container's supervision down."""
    try:
        fn()
    except Exception:  # noqa: BLE001 - logged, and the loop goes on
        import traceback
        traceback.print_exc()
