"""Reading and writing cgroup files, and finding the cgroup mounts.

Control files are written with one ``os.write`` on an unbuffered descriptor:
the kernel reports a refused value (EINVAL, EBUSY, ENOSPC) as the result of
that ``write(2)``, and a buffered Python file can defer the write to ``close``
or lose the error entirely (DESIGN.md "Key decisions").  Every failure becomes
a :class:`~sandbox.cgroups.CgroupError` naming the file, the value, the errno
text and, where one is known, what to do.
"""

from __future__ import annotations

import errno as E
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import CgroupError, PermissionRequired

DEFAULT_ROOT = "/sys/fs/cgroup"

#: How long rmdir keeps retrying EBUSY: a killed task leaves its group a few
#: milliseconds after the signal, not at once.
RMDIR_RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class MountInfo:
    """One line of /proc/self/mountinfo (see proc(5)), the fields we use."""

    root: str            # the path inside the file system that is mounted (cgroup namespaces)
    mount_point: Path
    fstype: str
    super_options: tuple[str, ...]   # for v1: the controllers, e.g. ("rw", "cpu", "cpuacct")

    @property
    def is_cgroup(self) -> bool:
        return self.fstype in ("cgroup", "cgroup2")

    def below(self, root: Path) -> bool:
        return self.mount_point == root or root in self.mount_point.parents


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as \ooo octal escapes.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[MountInfo]:
    """Parse mountinfo text.  Optional fields end at the lone "-" separator."""
    out = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 3:
            continue
        out.append(MountInfo(_unescape(fields[3]), Path(_unescape(fields[4])), tail[0],
                             tuple(tail[2].split(","))))
    return out


def read_mountinfo(path: str | os.PathLike[str] = "/proc/self/mountinfo") -> list[MountInfo]:
    """Mounts from ``path``; an unreadable file (no /proc) gives an empty list."""
    try:
        return parse_mountinfo(Path(path).read_text())
    except OSError:
        return []


# ------------------------------------------------------------------ errors

def _hint(path: Path, err: int) -> str | None:
    """What a refused write or mkdir most likely means, by file and errno."""
    name = path.name
    if name in ("devices.allow", "devices.deny") and os.geteuid() == 0:
        if err == E.EPERM:
            return "a group can only allow devices its parent group allows; check the parent's devices.list"
        if err == E.EINVAL:
            return "an 'a' (all devices) rule is refused while the group has child groups"
    if name == "cgroup.event_control" and err == E.EINVAL:
        return "the eventfd or the control file descriptor is not valid for this group"
    if err in (E.EACCES, E.EPERM, E.EROFS):
        return "the cgroup file system is read-only or not delegated to this process"
    if name.startswith("memory.") and err in (E.EINVAL, E.EBUSY):
        if "memsw" in name or "swap" in name:
            return "memory+swap must be at least the memory limit: --memory-swap >= --memory"
        return ("the limit is below what the group already uses, or above its "
                "memory+swap limit (raise --memory-swap first)")
    if name.startswith("cpuset."):
        if err == E.EBUSY:
            return ("a child cgroup or an exclusive sibling still uses these CPUs or "
                    "memory nodes; change the children first")
        if err == E.EINVAL:
            return "the CPUs or memory nodes must exist and be a subset of the parent's cpuset"
    if name.startswith(("blkio.", "io.")) and err in (E.EOPNOTSUPP, E.EINVAL, E.ENODEV):
        return ("per-device weights need the BFQ scheduler on that device (cat /sys/dev/block/MAJ:MIN/queue/"
                "scheduler); the device must be a whole block device given as MAJ:MIN")
    if name.startswith("cpu.rt_") and err == E.EINVAL:
        return ("the real-time runtime must fit in the parent group's budget: give the parent "
                "cpu.rt_runtime_us first (it is 0 for a new group)")
    if name.startswith("cpu.") and err == E.EINVAL:
        return ("the quota must be at least 1000us, the period between 1000us and "
                "1000000us, and within what the parent group allows")
    if name in ("cgroup.procs", "tasks"):
        if err == E.ESRCH:
            return "the process has already exited"
        if err == E.ENOSPC:
            return "the group's cpuset.cpus or cpuset.mems is empty; copy them from the parent"
        if err == E.EOPNOTSUPP:
            return "the group is threaded or has controllers enabled for its children"
        if err == E.EBUSY:
            return "the group has controllers enabled in cgroup.subtree_control, so it may not hold processes"
    if name == "cgroup.subtree_control" and err == E.EBUSY:
        return "the group holds processes itself; cgroup v2 allows controllers only above leaves"
    if err == E.ENOENT:
        return "the group does not exist yet, create() it first; or this kernel has no such file"
    if err == E.ENOSPC:
        return "a limit on the number of cgroups was reached: cgroup.max.descendants or cgroup.max.depth"
    return None


def os_error(action: str, path: Path, exc: OSError) -> Exception:
    """The engine error for a failed cgroup system call on ``path``."""
    err = exc.errno or E.EIO
    text = f"{action} {path}: {os.strerror(err).lower()}"
    if err in (E.EACCES, E.EPERM) and os.geteuid() != 0:
        return PermissionRequired(
            text, hint="cgroup limits need root, or a cgroup delegated to this user: "
                       "systemd-run --user -p Delegate=yes")
    return CgroupError(text, path=path, errno=err, hint=_hint(path, err))


# ------------------------------------------------------------------ files

def write(path: Path, value: str | int) -> None:
    """Write ``value`` to a control file in one unbuffered ``write(2)``."""
    data = str(value).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except OSError as exc:
        raise os_error(f"write {str(value)!r} to", path, exc) from exc
    try:
        written = os.write(fd, data)
        if written != len(data):
            raise CgroupError(f"write {value!r} to {path}: short write ({written} of {len(data)} bytes)",
                              path=path)
    except OSError as exc:
        raise os_error(f"write {str(value)!r} to", path, exc) from exc
    finally:
        os.close(fd)


def read(path: Path) -> str | None:
    """The file's text, or None when the kernel (or the controller) has no such file."""
    try:
        return path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise os_error("read", path, exc) from exc


def read_int(path: Path) -> int | None:
    """A single-number file; "max" (v2's unlimited) and a missing file give None."""
    text = read(path)
    if text is None or text.strip() in ("", "max"):
        return None
    return int(text.split()[0])


def mkdir(path: Path) -> None:
    """Create ``path`` and its parents; an existing group is fine."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_error("create cgroup", path, exc) from exc


def read_pids(directory: Path) -> list[int]:
    """Process ids in ``cgroup.procs``; none for a group that does not exist."""
    text = read(directory / "cgroup.procs")
    return sorted({int(p) for p in text.split()}) if text else []


def _deepest_first(directory: Path) -> Iterator[Path]:
    for dirpath, _dirnames, _files in os.walk(directory, topdown=False):
        yield Path(dirpath)


def remove_tree(directory: Path, deadline: float | None = None) -> None:
    """rmdir a group and its child groups, deepest first.

    A cgroup directory is removed with rmdir(2) although it still lists control
    files (they are not real files); the kernel refuses with EBUSY while tasks
    remain, so EBUSY is retried briefly -- a SIGKILLed task leaves its group
    shortly after the signal.  ``deadline`` (time.monotonic()) ends the retries,
    by default RMDIR_RETRY_SECONDS from now; one deadline serves all the
    directories of a v1 group.  Already gone is fine.
    """
    try:
        os.rmdir(directory)      # a container's group: no child groups, no tasks left
        return
    except FileNotFoundError:
        return
    except OSError:
        pass                     # child groups, or tasks still leaving: the careful way
    if deadline is None:
        deadline = time.monotonic() + RMDIR_RETRY_SECONDS
    for path in _deepest_first(directory):
        while True:
            try:
                os.rmdir(path)
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                if exc.errno == E.EBUSY and time.monotonic() < deadline:
                    time.sleep(0.01)
                    continue
                if exc.errno in (E.EBUSY, E.ENOTEMPTY):
                    pids = read_pids(path)
                    inside = f"processes still inside: {', '.join(map(str, pids))}" if pids \
                        else "it is still in use"
                    raise CgroupError(
                        f"cannot remove cgroup {path}: {inside}", path=path, errno=exc.errno,
                        hint="kill them first with docker kill or Cgroup.kill(), and wait for them to exit",
                    ) from exc
                raise os_error("remove cgroup", path, exc) from exc
