"""OOM notification: a file descriptor that turns readable when a group hits OOM.

The supervisor polls many containers at once, so a notifier is a pollable fd
(``select``/``poll``/``selectors`` all work) plus a non-blocking ``read()``
that says how many new OOM events there were and consumes the notification:

* v1 (cgroup-v1/memory.rst, "Memory thresholds" and "OOM Control"): an
  eventfd registered through ``cgroup.event_control`` as
  ``"<eventfd> <fd of memory.oom_control>"``.  The kernel adds 1 per OOM
  event, and once more when the group is removed -- that last one is not
  counted (runc checks the same way, by looking for the group).
* v2 (cgroup-v2.rst, "memory.events"): a change of ``memory.events`` is a
  kernfs "file modified" event, which poll(2) reports as POLLPRI on an open
  descriptor of the file until it is read again.  POLLIN is always set on a
  kernfs file, so the notifier wraps the file in an epoll set that waits for
  POLLPRI only; that epoll fd is what ``fileno()`` returns.  Any change of the
  file (``max``, ``high`` events too) wakes it; ``read()`` counts the change of
  ``oom_kill`` (or ``oom`` on kernels without it) and returns 0 for the rest.

::

    with cg.oom_notifier() as oom:
        selector.register(oom, selectors.EVENT_READ)   # the supervisor's loop
        ...
        if oom.read(): record_oom_kill(container)
"""

from __future__ import annotations

import abc
import errno as E
import os
import select
from pathlib import Path
from types import TracebackType

from ..errors import CgroupUnavailable
from . import fs
from .parse import flat_keyed


class OomNotifier(abc.ABC):
    """A pollable OOM event source for one group; close() it when done."""

    #: True once the group is gone: no further events can come.
    gone: bool = False

    @abc.abstractmethod
    def fileno(self) -> int:
        """The descriptor to poll: readable while an OOM event is unread."""

    @abc.abstractmethod
    def read(self) -> int:
        """New OOM events since the last read (0 if none); never blocks."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the descriptors; closing twice is fine."""

    @property
    @abc.abstractmethod
    def closed(self) -> bool:
        """True after close()."""

    def wait(self, timeout: float | None = None) -> int:
        """Block up to ``timeout`` seconds (None: forever) for an event, then read()."""
        poller = select.poll()
        poller.register(self.fileno(), select.POLLIN)
        poller.poll(None if timeout is None else int(timeout * 1000))
        return self.read()

    def __enter__(self) -> OomNotifier:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on a closed OOM notifier")


class EventfdOomNotifier(OomNotifier):
    """cgroup v1: an eventfd registered for ``memory.oom_control`` of ``memory_dir``."""

    def __init__(self, memory_dir: Path) -> None:
        self.path = memory_dir / "memory.oom_control"
        self._efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            try:
                control = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                raise fs.os_error("open", self.path, exc) from exc
            try:
                # The kernel takes its own reference to the eventfd; the control
                # file's descriptor is only needed for the registration itself.
                fs.write(memory_dir / "cgroup.event_control", f"{self._efd} {control}")
            finally:
                os.close(control)
        except BaseException:
            os.close(self._efd)
            raise
        self._closed = False

    def fileno(self) -> int:
        self._check_open()
        return self._efd

    def read(self) -> int:
        self._check_open()
        try:
            count = os.eventfd_read(self._efd)
        except BlockingIOError:
            return 0
        if not self.gone and not self.path.exists():
            self.gone = True     # the group was removed: the kernel signalled that once
            count -= 1
        return max(count, 0)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self._efd)

    @property
    def closed(self) -> bool:
        return self._closed


class EventsFileNotifier(OomNotifier):
    """cgroup v2: POLLPRI on a flat-keyed kernfs file, counting one key's increase.

    ``keys`` are tried in order; the first the file has is counted.  Made for
    ``memory.events`` but works for any such file (the tests watch
    ``cgroup.events`` where the memory controller is not available).
    """

    def __init__(self, path: Path, keys: tuple[str, ...] = ("oom_kill", "oom")) -> None:
        self.path = path
        self.keys = keys
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise fs.os_error("open", path, exc) from exc
        self._epoll = select.epoll()
        try:
            self._epoll.register(self._fd, select.EPOLLPRI)
            self._last = self._count() or 0
        except OSError as exc:
            self._release()
            if exc.errno == E.EPERM:   # epoll refuses files without poll support
                raise CgroupUnavailable(
                    f"cannot watch {path} for changes: it is not a cgroup2 control file",
                    path=path, errno=exc.errno,
                    hint="OOM notification on cgroup v2 needs the real cgroup2 mount") from exc
            raise fs.os_error("watch", path, exc) from exc
        except BaseException:
            self._release()
            raise

    def _count(self) -> int | None:
        """The watched counter now, or None once the group is gone (ENODEV)."""
        try:
            text = os.pread(self._fd, 4096, 0)
        except OSError as exc:
            if exc.errno in (E.ENODEV, E.ENOENT):
                return None
            raise fs.os_error("read", self.path, exc) from exc
        values = flat_keyed(text.decode(errors="replace"))
        for key in self.keys:
            if key in values:
                return values[key]
        return 0

    def fileno(self) -> int:
        self._check_open()
        return self._epoll.fileno()

    def read(self) -> int:
        self._check_open()
        if self.gone:
            return 0
        count = self._count()   # reading the same descriptor also clears POLLPRI
        if count is None:
            # A removed group's file reports POLLPRI|POLLERR for ever: stop watching it.
            self.gone = True
            self._epoll.unregister(self._fd)
            return 0
        new, self._last = max(count - self._last, 0), count
        return new

    def _release(self) -> None:
        self._epoll.close()
        os.close(self._fd)

    def close(self) -> None:
        if not self._epoll.closed:
            self._release()

    @property
    def closed(self) -> bool:
        return self._epoll.closed

