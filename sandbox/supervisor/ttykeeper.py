"""A terminal's keeper: the small process that holds a ``-t`` container's pty master.

Without a terminal, a container writes into fifos in its directory, which
outlive the supervisor: a killed supervisor loses nothing, and its successor
opens the fifos again.  A terminal is different: its master side is one file
descriptor, and when the last holder closes it the container's terminal is
hung up and everything it prints afterwards is lost.  So the master is not
kept by the supervisor but by a keeper forked from it for each ``-t``
container, which does nothing but copy:

* pty master -> ``stdout.fifo`` (read by the supervisor exactly like a
  non-terminal container's output, so logs, attach and ``logs -f`` work the
  same and survive the supervisor);
* ``stdin.fifo`` -> pty master (``-i``: what ``attach`` and ``start -a -i``
  type).

The supervisor keeps a duplicate of the master only to set the window size;
a new supervisor takes one back from the keeper with ``pidfd_getfd`` (the
master is always the keeper's fd 3).  The keeper ends when the container's
side of the terminal is closed (EIO on the master): after it has passed on
the last bytes.  Forked from the single-threaded supervisor, it shares its
memory copy-on-write and costs little.
"""

from __future__ import annotations

import errno
import os
import select
import signal

MASTER_FD, OUT_FD, IN_FD = 3, 4, 5


def spawn(master: int, out_w: int, in_r: int | None) -> int:
    """Fork a keeper for ``master``; return its pid.  The caller keeps its own fds."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            _run(master, out_w, in_r)
        except BaseException:  # noqa: BLE001 - a keeper must never unwind into the supervisor's code
            code = 1
        os._exit(code)
    return pid


def _run(master: int, out_w: int, in_r: int | None) -> None:
    # Settle the descriptors at 3, 4, 5 (in an order that cannot clobber one
    # another) and close everything else: the supervisor's sockets and other
    # containers' descriptors must not stay open in here.
    import fcntl
    fds = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (master, out_w, in_r) if fd is not None]
    for target, fd in zip((MASTER_FD, OUT_FD, IN_FD), fds):
        os.dup2(fd, target)
    os.closerange(IN_FD + 1 if in_r is not None else OUT_FD + 1, os.sysconf("SC_OPEN_MAX"))
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # a Ctrl-C for the supervisor's group is not ours
    from .. import kernel
    kernel.set_name("sandbox-tty")
    os.set_blocking(MASTER_FD, True)
    os.set_blocking(OUT_FD, True)
    watch = [MASTER_FD] + ([IN_FD] if in_r is not None else [])
    while True:
        ready, _, _ = select.select(watch, [], [])
        if MASTER_FD in ready:
            try:
                data = os.read(MASTER_FD, 65536)
            except OSError as e:
                if e.errno == errno.EIO:   # the container's side is closed: it has ended
                    return
                raise
            if not data:
                return
            _write_all(OUT_FD, data)
        if IN_FD in ready:
            data = os.read(IN_FD, 65536)
            if data:
                _write_all(MASTER_FD, data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
