"""Resolving a container path inside the rootfs without escaping it.

A mount destination such as ``/data`` is a path *inside* the container's file
system, and that file system belongs to the image's author: ``/data`` may be a
symlink to ``/../../etc`` or to ``/proc/self/root/...``.  Joining it to the
rootfs with ``os.path.join`` and letting the kernel follow the link would
mount over the host (CVE-2017-1002101, CVE-2021-30465).  :func:`secure_join`
walks the path one component at a time, reading each symlink and resolving
it again from the rootfs, so every result stays below it -- the algorithm of
github.com/cyphar/filepath-securejoin, which runc uses.

The init calls it before the container runs (nothing inside can race it then);
bind sources in volumes shared with running containers remain the documented
limit, as in runc before openat2.
"""

from __future__ import annotations

import errno
import os
import stat

#: Symlinks followed in one lookup before giving up (the kernel's MAXSYMLINKS is 40).
MAX_LINKS = 255


def secure_join(root: str, path: str) -> str:
    """``root/path`` with every symlink resolved as if ``root`` were ``/``.

    Missing components are kept as they are (the caller creates them); a
    symlink loop raises OSError(ELOOP).
    """
    root = os.path.abspath(root)
    todo = [p for p in path.split("/") if p]
    done: list[str] = []
    links = 0
    while todo:
        part = todo.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        full = os.path.join(root, *done, part)
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            done.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            done.append(part)
            continue
        links += 1
        if links > MAX_LINKS:
            raise OSError(errno.ELOOP, "too many levels of symbolic links", os.path.join("/", path))
        target = os.readlink(full)
        if target.startswith("/"):
            done = []
        todo = [p for p in target.split("/") if p] + todo
    return os.path.join(root, *done)


def is_symlink(path: str) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def make_dirs(path: str, mode: int = 0o755) -> None:
    """mkdir -p that does not mind the directory existing."""
    os.makedirs(path, mode=mode, exist_ok=True)


def make_file(path: str) -> None:
    """An empty file at ``path`` (and its parents) as a bind-mount target, unless something is there."""
    if os.path.lexists(path):
        return
    make_dirs(os.path.dirname(path))
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644))
