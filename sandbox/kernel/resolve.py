"""Opening a path below a directory so that no symlink, ``..`` or race can lead outside it.

A container's files belong to whoever built the image or runs the container:
any component of a path the engine follows inside them may be a symlink to
``/etc``, and a running container can swap one in after a check.  Resolving
the path and then opening the result by name is a race the container can
win (``docker cp`` CVE-2018-15664).  These helpers resolve while opening:

* :func:`open_in_root` treats the directory as ``/``, as the container sees
  it: symlinks are followed, an absolute one from the directory, and ``..``
  never climbs above it (``openat2`` with ``RESOLVE_IN_ROOT``; ``docker cp``'s
  semantics).
* :func:`open_beneath` follows no symlink at all (``RESOLVE_BENEATH |
  RESOLVE_NO_SYMLINKS``): for walking a tree whose directories were real
  when listed, where a symlink now is a race, refused with ELOOP.

openat2(2) is Linux 5.6+; before it, and where a seccomp profile refuses it
(ENOSYS), the same is done one component at a time with ``O_NOFOLLOW``
from descriptors, ``..`` handled from the stack of directories walked.
Unlike the rest of :mod:`sandbox.kernel`, failures raise plain ``OSError``
(FileNotFoundError, ...), as ``os.open`` does: callers use these in its place.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat

from ._libc import _libc

__all__ = ["MAX_LINKS", "RESOLVE_NO_XDEV", "RESOLVE_NO_MAGICLINKS", "RESOLVE_NO_SYMLINKS", "RESOLVE_BENEATH",
           "RESOLVE_IN_ROOT", "openat2", "open_in_root", "open_beneath", "fd_path"]

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

#: openat2 has one number on every architecture (it came after the tables were unified).
_NR_OPENAT2 = 437
#: Symlinks followed in one lookup before ELOOP (the kernel's limit is 40).
MAX_LINKS = 40
_DIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_state = {"missing": False}


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int | None:
    """openat2(2); None where this kernel (or a seccomp filter) has no openat2."""
    if _state["missing"]:
        return None
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    raw = os.fsencode(path)
    for _ in range(16):
        fd = int(_libc.syscall(ctypes.c_long(_NR_OPENAT2), ctypes.c_int(dirfd), ctypes.c_char_p(raw),
                               ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how))))
        if fd >= 0:
            return fd
        err = ctypes.get_errno()
        if err in (errno.EINTR, errno.EAGAIN):
            continue            # EAGAIN: a rename raced a ".." lookup; the kernel asks us to retry
        if err == errno.ENOSYS:
            _state["missing"] = True
            return None
        raise OSError(err, os.strerror(err), path)
    raise OSError(errno.EAGAIN, "the path kept changing while it was resolved", path)


def fd_path(fd: int) -> str:
    """A name for what ``fd`` refers to, for calls that take a path (it is the same inode)."""
    return f"/proc/self/fd/{fd}"


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]


def open_in_root(dirfd: int, path: str, flags: int = os.O_PATH, *, follow_last: bool = True,
                 mode: int = 0) -> int:
    """Open ``path`` as a process chrooted at ``dirfd`` would, and only there.

    ``follow_last=False`` opens a final symlink itself (``O_PATH | O_NOFOLLOW``
    gives a descriptor of the link).  The path is not cleaned lexically here:
    the caller decides that (``docker cp`` cleans it first).
    """
    parts = _parts(path)
    if not follow_last and parts:
        parent = open_in_root(dirfd, "/".join(parts[:-1]), os.O_PATH | os.O_DIRECTORY)
        try:
            if parts[-1] == "..":
                return open_in_root(parent, "..", flags, mode=mode)
            return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=parent)
        finally:
            os.close(parent)
    fd = openat2(dirfd, "/".join(parts) or ".", flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS, mode)
    if fd is not None:
        return fd
    return _walk_in_root(dirfd, parts, flags, mode)


def open_beneath(dirfd: int, path: str, flags: int = os.O_PATH) -> int:
    """Open ``path`` below ``dirfd`` through real directories only (ELOOP on any symlink)."""
    parts = _parts(path)
    if ".." in parts:
        raise OSError(errno.EXDEV, "a '..' component leaves the directory", path)
    fd = openat2(dirfd, "/".join(parts) or ".", flags,
                 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
    if fd is not None:
        return fd
    cur = os.open(".", _DIR, dir_fd=dirfd)
    try:
        for part in parts[:-1]:
            nxt = os.open(part, _DIR, dir_fd=cur)
            os.close(cur)
            cur = nxt
        return os.open(parts[-1] if parts else ".", flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur)
    finally:
        os.close(cur)


def _walk_in_root(rootfd: int, parts: list[str], flags: int, mode: int) -> int:
    """RESOLVE_IN_ROOT by hand: one component at a time from descriptors (the securejoin walk)."""
    stack = [os.open(".", _DIR, dir_fd=rootfd)]
    todo = list(parts)
    links = 0
    try:
        while todo:
            part = todo.pop(0)
            if part == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            last = not todo
            try:
                fd = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=stack[-1])
            except FileNotFoundError:
                if last and flags & os.O_CREAT:
                    return os.open(part, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=stack[-1])
                raise
            st = os.fstat(fd)
            if stat.S_ISLNK(st.st_mode):
                os.close(fd)
                links += 1
                if links > MAX_LINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), "/".join(parts))
                target = os.readlink(part, dir_fd=stack[-1])
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                todo = _parts(target) + todo
                continue
            if last:
                if flags & os.O_PATH:
                    if flags & os.O_DIRECTORY and not stat.S_ISDIR(st.st_mode):
                        os.close(fd)
                        raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), "/".join(parts))
                    return fd
                try:    # through the descriptor, not the name: a link swapped in now is not seen
                    return os.open(fd_path(fd), (flags & ~os.O_NOFOLLOW) | os.O_CLOEXEC, mode)
                finally:
                    os.close(fd)
            if not stat.S_ISDIR(st.st_mode):
                os.close(fd)
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), "/".join(parts))
            stack.append(fd)
        return os.open(".", flags | os.O_CLOEXEC, mode, dir_fd=stack[-1])
    finally:
        for fd in stack:
            os.close(fd)
