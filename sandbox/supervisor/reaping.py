"""Exit statuses: of our children (a wait status), and of processes we did not fork.

A restarted supervisor adopts containers whose init is no longer its child
(the dead supervisor was their parent), so it cannot ``waitpid`` them; these
helpers read where the status went: the file the dead supervisor's exit
keeper wrote when it reaped the orphan (:mod:`.keeper`), a pidfd's exit info,
or a zombie's ``/proc/PID/stat``.  A process is "the same" as a recorded one
only when its start time matches too (pids are reused).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .. import kernel
from ..runtime.procs import proc_stat_fields, process_start_time


def exit_code_of(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128 + the signal."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def exit_code_from_pidfd(pidfd: int, pid: int) -> int | None:
    """The exit code of a process that is not our child (an adopted container).

    Linux 6.15+ keeps it for holders of a pidfd (PIDFD_GET_INFO with
    PIDFD_INFO_EXIT); before it is reaped, /proc/PID/stat field 52 has it too.
    """
    status = kernel.pidfd_exit_status(pidfd)
    if status is None:
        status = zombie_exit_status(pid)
    return None if status is None else exit_code_of(status)


def zombie_exit_status(pid: int) -> int | None:
    """A zombie's wait status: field 52 of /proc/PID/stat (Linux 3.5+), readable by anyone."""
    fields = proc_stat_fields(pid)
    if fields is None or fields[0] != b"Z" or len(fields) < 50:
        return None
    return int(fields[-1])


def alive(pid: int, start_time: int) -> bool:
    """Whether ``pid`` is still the process that started at ``start_time``."""
    return pid > 0 and process_start_time(pid) == start_time


def kept_exit_status(exits: Path, pid: int, start_time: int, *, consume: bool = True) -> int | None:
    """The wait status an exit keeper recorded for ``pid`` started at ``start_time``, or None."""
    path = exits / f"{pid}-{start_time}"
    try:
        status = int(path.read_text())
    except (OSError, ValueError):
        return None
    if consume:
        with contextlib.suppress(OSError):
            path.unlink()
    return status


def forget_kept_exits(exits: Path, wanted: set[str]) -> None:
    """Remove the keepers' records no container waits for (an exec, a terminal keeper)."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(exits):
            if entry.name not in wanted:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
