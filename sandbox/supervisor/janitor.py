"""The janitor: a small process that deletes removed containers' directories beside the supervisor.

A removed container's directory (its upper and work layers, bundle, fifos,
records: a dozen entries) took the supervisor about 3 ms to delete, in
pieces between other work (:meth:`.loop.Loop.delete_when_idle`).  In a loop
of ``run --rm`` there is no idle time: the pieces ran while the next init set
itself up, the window that also makes the next spare init
(:mod:`sandbox.runtime.spare`), and together they overran it.  The janitor
takes the whole job off the supervisor's thread, onto another core: the
supervisor writes the path (NUL-terminated) to the janitor's stdin and goes
on.

It must run as ``python -I -S janitor.py`` and import nothing but the
standard library (like the keeper).  It deletes what it is given, in order,
and exits when its stdin closes: when the supervisor stops (which waits for
it, so no deletion is left half-done behind a clean stop) or dies (then it
finishes the paths it has read; whatever was never sent stays a
``.removing-*`` directory, which the next supervisor deletes at start-up).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys


def serve(stdin: int) -> int:
    """Delete each NUL-terminated path read from ``stdin`` until it closes."""
    pending = b""
    while True:
        try:
            chunk = os.read(stdin, 65536)
        except InterruptedError:
            continue
        if not chunk:
            return 0
        pending += chunk
        *paths, pending = pending.split(b"\0")
        for path in paths:
            if path:
                shutil.rmtree(os.fsdecode(path), ignore_errors=True)


if __name__ == "__main__":
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    # Deleting can wait: on a busy machine the next container's init gets the core first.
    os.nice(19)
    sys.exit(serve(0))


class Janitor:
    """The supervisor's end: the janitor is started on first use.

    :meth:`delete` returning False means "delete it yourself": the janitor
    could not be started, has died, or its pipe is full.
    """

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.refused = False

    def delete(self, path: str) -> bool:
        data = os.fsencode(path) + b"\0"
        if self.refused or len(data) > 4096:    # up to PIPE_BUF a pipe write is all or nothing
            return False
        if self.proc is None or self.proc.poll() is not None:
            try:
                self.proc = subprocess.Popen([sys.executable, "-I", "-S", __file__], stdin=subprocess.PIPE,
                                             stdout=subprocess.DEVNULL, close_fds=True)
            except OSError:
                self.refused = True
                return False
            assert self.proc.stdin is not None
            os.set_blocking(self.proc.stdin.fileno(), False)
        assert self.proc.stdin is not None
        try:
            os.write(self.proc.stdin.fileno(), data)
        except OSError:        # full (EAGAIN), or the janitor is gone (EPIPE)
            return False
        return True

    def close(self) -> None:
        """Let the janitor finish what it was given, and wait until it has."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait()
