"""One container's input and output in the supervisor: fifos, a terminal's keeper, stdin.

* Output: ``stdout.fifo``/``stderr.fifo`` in the container directory.  The
  container's own descriptors are opened read-write, so a write never meets
  "no reader" (SIGPIPE) while the supervisor is down; the pipe buffer holds
  64 KiB and then the container blocks until a restarted supervisor opens the
  fifo again and drains it.  That is how a detached container outlives
  ``kill -9`` of its supervisor without losing a line.
* With ``-t``, the pty master goes to a keeper process (:mod:`ttykeeper`)
  that copies it into the same fifo; we keep a duplicate only to resize it.
* With ``-i``, the write end of the container's stdin (a pipe, or the
  keeper's ``stdin.fifo``), written without blocking the loop.

What is read goes to ``deliver(stream, data)``: the Box's log and clients.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import time
from pathlib import Path
from collections.abc import Callable

from .. import kernel
from ..errors import ContainerStartError, SandboxError
from ..runtime.procs import process_start_time
from . import protocol
from .loop import Loop
from .reaping import alive

READ_CHUNK = 65536


class BoxIO:
    def __init__(self, loop: Loop, cdir: Path, deliver: Callable[[int, bytes], None],
                 running: Callable[[], bool]) -> None:
        self.loop, self.dir = loop, cdir
        self._deliver, self._running = deliver, running
        self.out_fds: dict[int, int] = {}          # our read fd -> stream number
        self.tty_master: int | None = None
        self.tty_resize: int | None = None   # a duplicate of the terminal's master, to set its size
        self.keeper: int | None = None        # the process holding the master (ttykeeper)
        self.keeper_start = 0                 # its start time: an adopted keeper is not our child
        self.stdin_w: int | None = None
        self.stdin_buf = bytearray()
        self._stdin_eof = False

    # ------------------------------------------------------------------ set-up

    def open_fifo_reader(self, name: str, stream: int) -> int:
        for fd, s in self.out_fds.items():
            if s == stream:
                return fd  # still open from before (a restart, or an adopted container)
        fd = os.open(self.dir / name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self.out_fds[fd] = stream
        self.loop.add_reader(fd, lambda: self._on_output(fd))
        return fd

    def container_stdio(self, open_stdin: bool, fds_to_close: list[int]) -> tuple[int, int, int]:
        """The container's stdin, stdout and stderr (no terminal); the caller closes ``fds_to_close``.

        Our non-blocking read ends first (opening a fifo for reading with
        O_NONBLOCK never waits), then the container's read-write ends.
        """
        self.open_fifo_reader("stdout.fifo", protocol.STDOUT)
        self.open_fifo_reader("stderr.fifo", protocol.STDERR)
        out_w = os.open(self.dir / "stdout.fifo", os.O_RDWR | os.O_CLOEXEC)
        fds_to_close.append(out_w)
        err_w = os.open(self.dir / "stderr.fifo", os.O_RDWR | os.O_CLOEXEC)
        fds_to_close.append(err_w)
        if open_stdin:
            in_r, in_w = os.pipe2(os.O_CLOEXEC)
            fds_to_close.append(in_r)
            os.set_blocking(in_w, False)
            self.stdin_w = in_w
        else:
            in_r = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            fds_to_close.append(in_r)
        return in_r, out_w, err_w

    def take_console(self, sock: socket.socket, open_stdin: bool) -> list[int]:
        """Hand the terminal's master to a keeper process; keep a duplicate to resize it.

        Returns the keeper's pid and start time, for the record.
        """
        from . import ttykeeper
        msg, fds, _, _ = socket.recv_fds(sock, 1024, 1)
        if not fds:
            raise ContainerStartError("console", "the container did not send its terminal")
        master = fds[0]
        self.open_fifo_reader("stdout.fifo", protocol.STDOUT)
        out_w = os.open(self.dir / "stdout.fifo", os.O_RDWR | os.O_CLOEXEC)
        in_r = None
        try:
            if open_stdin:
                fifo = self.dir / "stdin.fifo"
                if not fifo.exists():
                    os.mkfifo(fifo, 0o600)
                in_r = os.open(fifo, os.O_RDWR | os.O_CLOEXEC)
                self.stdin_w = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            self.keeper = ttykeeper.spawn(master, out_w, in_r)
        finally:
            os.close(out_w)
            if in_r is not None:
                os.close(in_r)
        self.tty_resize = master
        self.keeper_start = process_start_time(self.keeper) or 0
        return [self.keeper, self.keeper_start]

    def adopt_tty(self, keeper: int, start_time: int, open_stdin: bool) -> None:
        """A new supervisor: take the terminal back from its keeper (to resize it, and for -i)."""
        from . import ttykeeper
        if not alive(keeper, start_time):
            return   # the keeper is gone: the terminal has ended
        self.keeper, self.keeper_start = keeper, start_time
        with contextlib.suppress(SandboxError, OSError):
            pidfd = kernel.pidfd_open(keeper)
            try:
                self.tty_resize = kernel.pidfd_getfd(pidfd, ttykeeper.MASTER_FD)
            finally:
                os.close(pidfd)
        fifo = self.dir / "stdin.fifo"
        if open_stdin and fifo.exists():
            with contextlib.suppress(OSError):
                self.stdin_w = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)

    def wait_keeper(self, timeout: float = 2.0) -> None:
        """The container has ended: let its keeper pass on the last output, then reap it."""
        if self.keeper is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.drain()   # keep the fifo flowing: a full fifo would block the keeper
            try:
                gone = os.waitpid(self.keeper, os.WNOHANG)[0] != 0
            except ChildProcessError:
                # not our child (adopted after a supervisor restart), or reaped already:
                # it may still be passing on the last output, so wait until it is gone
                gone = not alive(self.keeper, self.keeper_start)
            if gone:
                break
            time.sleep(0.01)
        self.drain()       # what it passed on just before it left
        self.keeper = None

    # ------------------------------------------------------------------ output

    def _on_output(self, fd: int) -> None:
        stream = self.out_fds.get(fd)
        if stream is None:
            return
        try:
            data = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno != errno.EIO:  # EIO: the pty's last holder closed it
                raise
            data = b""
        if not data:
            if fd == self.tty_master or not self._running():
                self._close_out(fd)
            else:
                # Nobody holds a write end right now (the init has not opened it
                # yet, or only grandchildren did): stop polling the EOF until exit.
                self.loop.remove_reader(fd)
            return
        self._deliver(stream, data)

    def drain(self) -> None:
        """Read whatever the pipes still hold (the container has exited)."""
        for fd, stream in list(self.out_fds.items()):
            while True:
                try:
                    data = os.read(fd, READ_CHUNK)
                except (BlockingIOError, OSError):
                    break
                if not data:
                    break
                self._deliver(stream, data)

    def _close_out(self, fd: int) -> None:
        self.loop.forget(fd)
        self.out_fds.pop(fd, None)
        if fd == self.tty_master:
            self.tty_master = None
        with contextlib.suppress(OSError):
            os.close(fd)

    def close(self) -> None:
        for fd in list(self.out_fds):
            self._close_out(fd)
        if self.tty_resize is not None:
            with contextlib.suppress(OSError):
                os.close(self.tty_resize)
            self.tty_resize = None
        if self.stdin_w is not None:
            self.loop.forget(self.stdin_w)
            with contextlib.suppress(OSError):
                os.close(self.stdin_w)
            self.stdin_w = None
        self.stdin_buf.clear()

    # ------------------------------------------------------------------ input

    def write_stdin(self, data: bytes) -> None:
        target = self.tty_master if self.tty_master is not None else self.stdin_w
        if target is None:
            return
        if not data:  # end of input
            if self.tty_resize is not None:
                self.stdin_buf += b"\x04"  # ^D on a terminal (through its keeper)
            elif self.tty_master is None:
                self._stdin_eof = True     # flush what is queued, then close
            else:
                self.stdin_buf += b"\x04"  # ^D on a terminal
            self._flush_stdin()
            return
        self.stdin_buf += data
        self._flush_stdin()

    def _flush_stdin(self) -> None:
        target = self.tty_master if self.tty_master is not None else self.stdin_w
        if target is None:
            self.stdin_buf.clear()
            return
        while self.stdin_buf:
            try:
                n = os.write(target, self.stdin_buf)
            except BlockingIOError:
                self.loop.add_writer(target, self._flush_stdin)
                return
            except OSError:
                self.stdin_buf.clear()
                break
            del self.stdin_buf[:n]
        self.loop.remove_writer(target)
        if self._stdin_eof and self.stdin_w is not None and self.tty_master is None:
            self.loop.forget(self.stdin_w)
            os.close(self.stdin_w)
            self.stdin_w = None
            self._stdin_eof = False

    def resize(self, height: int, width: int) -> None:
        target = self.tty_resize if self.tty_resize is not None else self.tty_master
        if target is not None:
            import fcntl
            import struct
            import termios
            fcntl.ioctl(target, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

