"""Processes named by pid + start time: reading /proc, signalling, waiting.

A pid alone can be reused once its process is reaped; a pid together with
its start time (field 22 of ``/proc/PID/stat``) names one process for the
life of the boot.  Every signal the runtime sends goes through a pidfd
checked against that pair, so a reused pid is never hit.
"""

from __future__ import annotations

import os
import select
import signal
import time

from .. import kernel
from ..errors import ContainerStartError, InvalidStateTransition, KernelError, UsageError


def proc_stat_fields(pid: int) -> list[bytes] | None:
    """/proc/PID/stat from field 3 (the state) on, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after the last ')'.
    return data[data.rindex(b")") + 2:].split()


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks since boot): a pid plus this names one process."""
    fields = proc_stat_fields(pid)
    if fields is None or fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def parse_signal(sig: int | str) -> int:
    """9, "9", "KILL" or "SIGKILL" as a signal number (runc's and docker's spellings)."""
    if isinstance(sig, int):
        return sig
    text = str(sig).strip().upper()
    if text.isdigit():
        return int(text)
    name = text if text.startswith("SIG") else "SIG" + text
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise UsageError(f"invalid signal: {sig}", hint="use a name such as TERM or KILL, or a number") from None


def send_signal(pid: int, start_time: int, signum: int) -> None:
    """Signal exactly the process (pid, start time): a pidfd, so a reused pid is never hit."""
    try:
        pidfd = kernel.pidfd_open(pid)
    except KernelError:
        raise InvalidStateTransition(f"cannot signal process {pid}: it has exited", state="stopped") from None
    try:
        if process_start_time(pid) != start_time:
            raise InvalidStateTransition(f"cannot signal process {pid}: it has exited", state="stopped")
        kernel.pidfd_send_signal(pidfd, signum)
    finally:
        os.close(pidfd)


def wait_readable(fd: int, pid: int, *, what: str, timeout: float | None = None) -> None:
    """Poll ``fd`` until readable, giving up when ``pid`` exits (it would never write)."""
    try:
        pidfd = kernel.pidfd_open(pid)
    except KernelError:
        pidfd = None
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            events = dict(poller.poll(100))
            if events.get(fd):
                return
            if pidfd is None or events.get(pidfd):
                raise ContainerStartError("start", f"the container's init exited while waiting for {what}")
            if deadline is not None and time.monotonic() > deadline:
                raise ContainerStartError("start", f"timed out waiting for {what}")
    finally:
        if pidfd is not None:
            os.close(pidfd)


def kill_and_wait(pid: int) -> None:
    """SIGKILL a container init that may already be gone, and wait until it is."""
    start = process_start_time(pid)
    if start is None:
        return
    try:
        send_signal(pid, start, signal.SIGKILL)
    except InvalidStateTransition:
        return
    wait_gone(pid, start, 5.0)


def wait_gone(pid: int, start_time: int, timeout: float) -> bool:
    """Whether the process (pid, start time) ended within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while process_start_time(pid) == start_time:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def reap(pid: int) -> None:
    """waitpid a child of ours that may have been reaped already."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
