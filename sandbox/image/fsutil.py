"""Small file-system primitives the store is built on: atomic writes and locks.

Why these exist:

* A metadata file is only ever replaced whole: written to a temp file in the
  same directory, fsync'ed, renamed over the old one, and the directory
  fsync'ed.  A reader sees the old or the new content, never half of each,
  even when the writer is killed with SIGKILL or the machine loses power.
* Locks are ``flock(2)`` locks (``fcntl.flock``).  Unlike POSIX record locks
  (``lockf``) they belong to the open file description, so closing an unrelated
  descriptor of the same file does not drop them, and the kernel releases them
  when the holder dies, so a killed process never leaves the store locked.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import sys
import threading
from pathlib import Path
TYPE_CHECKING = False  # not typing's: a cold command need not import typing (see sandbox/plain.py)
if TYPE_CHECKING:
    from typing import Any
from collections.abc import Iterator

TMP_PREFIX = ".tmp-"



def random_hex(nbytes: int) -> str:
    """Random hex for file and object names (``secrets.token_hex`` without importing
    ``secrets``, whose hmac and random imports a cold command would pay for)."""
    return os.urandom(nbytes).hex()

def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: ``FS_IOC_GETFLAGS`` / ``FS_IOC_SETFLAGS`` (``_IOR/_IOW('f', 1|2, long)`` on 64-bit Linux) and
#: ``FS_TOPDIR_FL``, chattr's ``+T``: see ioctl_iflags(2).
_FS_IOC_GETFLAGS, _FS_IOC_SETFLAGS, _FS_TOPDIR_FL = 0x80086601, 0x40086602, 0x00020000


def spread_subdirs(path: Path) -> bool:
    """Mark ``path`` as a top of unrelated trees (chattr ``+T``); return whether it is marked.

    ext4 (and ext2/3) put a new inode in its parent directory's block group and
    search on from there; a directory made under a ``+T`` directory is instead
    placed by the Orlov allocator in a roomy group (as ``/home``'s children are).
    Every unpacked layer is such an unrelated tree, and its parent's group is the
    one where the last removed layer freed its inodes: ext4 without a journal
    skips inodes freed in the last 60-300 s (``recently_deleted()`` in
    fs/ext4/ialloc.c), one lookup each, so creates there cost 0.6-1.4 ms against
    0.05 ms in a fresh group (measured on this project's VM).  A 100 MB,
    2,000-file ``load`` went from 1.02 s to 0.83 s (medians, interleaved).  Best
    effort: other file systems (tmpfs, overlay, xfs) refuse the ioctl or ignore
    the flag, and nothing depends on it but speed.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        flags = int.from_bytes(fcntl.ioctl(fd, _FS_IOC_GETFLAGS, bytes(8))[:4], sys.byteorder)
        if not flags & _FS_TOPDIR_FL:
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, (flags | _FS_TOPDIR_FL).to_bytes(4, sys.byteorder) + bytes(4))
        return True
    except OSError:   # ENOTTY, EOPNOTSUPP, EINVAL, EPERM (not the owner): the default placement
        return False
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o644, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` all at once (temp + fsync + rename; no fsyncs unless ``durable``)."""
    path = Path(path)
    tmp = path.parent / f"{TMP_PREFIX}{path.name}-{random_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fchmod(fd, mode)  # the umask must not decide a metadata file's mode
        if durable:
            os.fsync(fd)
    except BaseException as e:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            from ..errors import StoreFull
            raise StoreFull(path.name, str(path.parent)) from None
        raise
    os.close(fd)
    os.rename(tmp, path)
    if durable:
        fsync_dir(path.parent)


def is_disk_full(error: BaseException | None) -> bool:
    """Whether ``error``, or an error it was raised from, is ENOSPC or EDQUOT (a full disk or quota)."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        error = error.__cause__ or error.__context__
    return False


#: Below this much free space a file system counts as full (what a failed program saw).
FULL_BELOW = 1 << 20


def nearly_full(path: Path | str) -> bool:
    """Whether the file system holding ``path`` has less than FULL_BELOW left for its users."""
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < FULL_BELOW


def canonical_json(obj: Any) -> bytes:
    """The one JSON encoding used for blobs we create: sorted keys, no spaces.

    The same object always gives the same bytes, hence the same digest.
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def atomic_write_json(path: Path, obj: Any, *, durable: bool = True) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True).encode() + b"\n", durable=durable)


def remove_stale_tmp(directory: Path) -> None:
    """Delete temp files a killed writer left behind (call with the writers' lock held)."""
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(directory):
            if entry.name.startswith(TMP_PREFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)


class FileLock:
    """A reentrant (per thread) flock on one file, shared or exclusive.

    Reentrant because store operations nest (``rmi`` tags and collects under the
    same lock); a second ``flock`` from the same thread on a new descriptor would
    deadlock against itself.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._mutex = threading.RLock()

    @contextlib.contextmanager
    def hold(self, shared: bool = False) -> Iterator[None]:
        state = self._local.__dict__
        if state.get("depth"):
            if not shared and state["shared"]:
                raise RuntimeError(f"cannot upgrade shared lock {self.path} to exclusive")
            state["depth"] += 1
            try:
                yield
            finally:
                state["depth"] -= 1
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            state.update(depth=1, shared=shared, fd=fd)
            try:
                yield
            finally:
                state["depth"] = 0
        finally:
            os.close(fd)  # closing the descriptor releases the flock


def try_lock_exclusive(path: Path) -> int | None:
    """Take an exclusive flock without waiting; return the fd, or None if held.

    A lock file that does not exist is held by nobody: it is created and locked.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return None
        raise
    return fd
