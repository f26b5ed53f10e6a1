"""The exit keeper: the supervisor's parent, which holds exit codes while no supervisor runs.

Containers are the supervisor's children (it is their child subreaper).  If
the supervisor dies, ``kill -9`` included, the kernel gives its children to
the nearest subreaper above it, and without one to PID 1, which reaps them
and throws their exit codes away: a container that ran ``exit 7`` while no
supervisor was running would come back as "exit code unknown".  conmon keeps
one waiter per container for this; here one small process per supervisor is
enough.  The supervisor forks at start-up and the parent becomes this keeper
(execed, so it holds none of the supervisor's memory): it is the subreaper
above the supervisor, so orphaned inits become its children, and it writes
each one's wait status to ``EXITS/PID-STARTTIME`` (the pid and its start
time name one process) for the next supervisor to read.  It leaves once it
has no children: the supervisor gone and every orphaned container collected.

It must run as ``python -I -S keeper.py EXITS SUPERVISOR_PID`` and import
nothing but the standard library: it lives as long as the containers do.
"""

from __future__ import annotations

import os
import signal
import sys


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat, readable while the process is still a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return int(data[data.rindex(b")") + 2:].split()[19])


def record(exits: str, pid: int, start: int, status: int) -> None:
    """Write ``status`` where the next supervisor looks (a rename, so never half-written)."""
    os.makedirs(exits, exist_ok=True)
    tmp = os.path.join(exits, f".{pid}-{start}.tmp")
    with open(tmp, "w") as f:
        f.write(f"{status}\n")
    os.rename(tmp, os.path.join(exits, f"{pid}-{start}"))


def keep(exits: str, supervisor: int) -> int:
    """Reap every child until none is left; record each one but the supervisor."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue
        if info is None:
            continue
        pid = info.si_pid
        start = start_time(pid)      # before the reap: the zombie still has its /proc entry
        _, status = os.waitpid(pid, 0)
        if pid == supervisor or start is None:
            continue
        try:
            record(exits, pid, start, status)
        except OSError as e:
            print(f"exit keeper: cannot record the exit of pid {pid} (status {status}): {e}",
                  file=sys.stderr, flush=True)


if __name__ == "__main__":
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    sys.exit(keep(sys.argv[1], int(sys.argv[2])))
