"""COPY and ADD on a mounted root file system, with Docker's rules for where files land.

The builder mounts the image so far as an overlay with an empty upper
directory, calls these functions on the merged view, unmounts, and the upper
directory *is* the new layer (overlay copies up exactly the directories a
real ``COPY`` changes, as Docker's own commit of its build container does).

Rules (the Dockerfile reference, and Docker's classic builder where it is
vague):

* a directory source copies its *contents*, not itself;
* a file lands at ``dest`` unless ``dest`` ends in ``/`` or is an existing
  directory, in which case it lands inside it under its own name;
* several sources need a ``dest`` that ends in ``/``;
* missing parent directories are made (0755) and, like everything copied,
  owned by ``--chown`` (default 0:0: owners from the context never leak in);
  ``--chmod`` sets the mode of everything copied;
* modification times are kept; symlinks are copied as symlinks.

The image belongs to whoever built it: ``/app`` may be a symlink to ``/etc``
or to ``../../../../etc``.  Every destination is resolved *inside* the image
(:func:`~sandbox.kernel.open_in_root`, as a process chrooted there would,
which is also BuildKit's ``RootPath`` rule), so ``COPY f /app/`` writes the
container's ``/etc``, never the host's; and everything is then created
relative to a directory descriptor with ``O_NOFOLLOW``, never by a host
path.  Sources come as descriptors too (see
:class:`~sandbox.build.context.SourceTree`): content is read from the inode
that was checked, not from a name that may have changed since.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Iterable
TYPE_CHECKING = False  # not typing's: a cold command need not import typing (see sandbox/plain.py)
if TYPE_CHECKING:
    from typing import Any

from ..errors import BuildError, UsageError
from .context import fd_path

#: Symlinks followed in one lookup before ELOOP, as :data:`sandbox.kernel.resolve.MAX_LINKS` (the kernel's 40).
MAX_LINKS = 40


def open_in_root(root_fd: int, path: str, flags: int) -> int:
    """:func:`sandbox.kernel.open_in_root`, imported on first use: a build step that copies
    nothing (a cache hit above all) never loads the kernel's resolver and ctypes."""
    from ..kernel.resolve import open_in_root as resolve
    return resolve(root_fd, path, flags)

_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC

#: One source entry: (its path below the copied directory, an O_PATH descriptor, its lstat).
Entry = tuple[str, int, os.stat_result]



def _chown(call: Any, target: Any, uid: int, gid: int, **kw: Any) -> None:
    """``call(target, uid, gid)``; without root, 0:0 is our own uid already.

    A store written by an unprivileged user (no user namespace: Binder) has the
    user's files stand for root's: the layer writer maps them to 0:0.  Any other
    owner cannot be given there, and says so instead of failing as a copy error.
    """
    if os.geteuid() != 0:
        if (uid, gid) == (0, 0):
            return
        try:
            call(target, uid, gid, **kw)
        except PermissionError:
            raise UsageError(f"--chown {uid}:{gid} needs root, or rootless mode with subordinate ids",
                             hint="without them every file of the image belongs to root: drop --chown") from None
        return
    call(target, uid, gid, **kw)

def open_root(path: str | os.PathLike[str]) -> int:
    """An O_PATH descriptor of a root (the merged view of the image so far): every path starts there."""
    return os.open(path, _DIR)


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]


def make_dirs(root_fd: int, path: str, uid: int, gid: int, *, last_mode: int = 0o755) -> int:
    """``mkdir -p`` of the image's absolute ``path``; an O_PATH descriptor of that directory.

    Symlinks on the way are followed inside the image, also one that points
    into directories that do not exist yet (they are made where it points).
    A file in the way is replaced by a directory, as before.  Made
    directories are owned by ``uid:gid``, mode 0755 (``last_mode`` for
    ``path`` itself).
    """
    todo = _parts(path)
    links = 0
    for _ in range(4 * (len(todo) + MAX_LINKS)):
        try:
            return open_in_root(root_fd, "/".join(todo), _DIR)
        except (FileNotFoundError, NotADirectoryError):
            pass
        parent, i = _deepest_dir(root_fd, todo)
        try:
            name = todo[i]
            try:
                st: os.stat_result | None = os.lstat(name, dir_fd=parent)
            except FileNotFoundError:
                st = None
            if st is not None and stat.S_ISLNK(st.st_mode):
                # Where the link points, resolved from its directory (or the image's root): what
                # the kernel does, with the image's root as /.
                links += 1
                if links > MAX_LINKS:
                    break
                target = os.readlink(name, dir_fd=parent)
                todo = (_parts(target) if target.startswith("/") else todo[:i] + _parts(target)) + todo[i + 1:]
                continue
            if st is not None and stat.S_ISDIR(st.st_mode) or name == "..":
                raise OSError(errno.EAGAIN, "the directory changed while it was made", path)
            if st is not None:
                _remove_at(parent, name)
            os.mkdir(name, 0o700, dir_fd=parent)
            _chown(os.chown, name, uid, gid, dir_fd=parent, follow_symlinks=False)
            made = os.open(name, _DIR | os.O_NOFOLLOW, dir_fd=parent)
            try:
                os.chmod(fd_path(made), last_mode if i == len(todo) - 1 else 0o755)
            finally:
                os.close(made)
        finally:
            os.close(parent)
    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)


def _deepest_dir(root_fd: int, todo: list[str]) -> tuple[int, int]:
    """The descriptor of the longest prefix of ``todo`` that is a directory, and its length."""
    for i in range(len(todo) - 1, 0, -1):
        try:
            return open_in_root(root_fd, "/".join(todo[:i]), _DIR), i
        except (FileNotFoundError, NotADirectoryError):
            continue
    return os.open(".", _DIR, dir_fd=root_fd), 0


def target(root_fd: int, dest: str, name: str, into_dir: bool, uid: int, gid: int) -> tuple[int, str]:
    """Where one file source named ``name`` lands for ``dest``: (descriptor of its directory, its name).

    Into ``dest`` when ``into_dir``, when ``dest`` ends in ``/`` or is a
    directory (through symlinks, in the image); otherwise at ``dest`` itself,
    a final symlink followed in the image.  Missing directories are made.
    """
    if into_dir or dest.endswith("/"):
        return make_dirs(root_fd, dest, uid, gid), name
    todo = _parts(dest)
    for _ in range(MAX_LINKS + 1):
        if not todo or todo[-1] == "..":
            return make_dirs(root_fd, "/".join(todo), uid, gid), name
        head, last = todo[:-1], todo[-1]
        parent = make_dirs(root_fd, "/".join(head), uid, gid)
        try:
            st = os.lstat(last, dir_fd=parent)
        except FileNotFoundError:
            return parent, last
        if stat.S_ISDIR(st.st_mode):
            try:
                return os.open(last, _DIR | os.O_NOFOLLOW, dir_fd=parent), name
            finally:
                os.close(parent)
        if not stat.S_ISLNK(st.st_mode):
            return parent, last
        link = os.readlink(last, dir_fd=parent)
        os.close(parent)
        todo = _parts(link) if link.startswith("/") else head + _parts(link)
    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), dest)


def _remove_at(dir_fd: int, name: str) -> None:
    """Remove ``name`` in ``dir_fd``, a directory recursively; symlinks are never followed."""
    try:
        st = os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        import shutil  # here: shutil brings bz2 and lzma, which a cache hit never needs
        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)


def copy_entry(src_fd: int, st: os.stat_result, parent: int, name: str, uid: int, gid: int,
               chmod: int | None) -> int | None:
    """One entry (file, symlink, directory, fifo) from the descriptor ``src_fd`` to ``name`` in ``parent``.

    What was there is replaced, except a directory by a directory.  Returns an
    O_PATH descriptor of the directory made (the caller closes it), else None.
    """
    try:
        old: os.stat_result | None = os.lstat(name, dir_fd=parent)
    except FileNotFoundError:
        old = None
    is_dir = stat.S_ISDIR(st.st_mode)
    if old is not None and not (is_dir and stat.S_ISDIR(old.st_mode)):
        _remove_at(parent, name)
        old = None
    mode = chmod if chmod is not None else stat.S_IMODE(st.st_mode)
    times = (st.st_atime_ns, st.st_mtime_ns)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink("", dir_fd=src_fd), name, dir_fd=parent)
        _chown(os.chown, name, uid, gid, dir_fd=parent, follow_symlinks=False)
        os.utime(name, ns=times, dir_fd=parent, follow_symlinks=False)
        return None
    if is_dir:
        if old is None:
            os.mkdir(name, 0o700, dir_fd=parent)
        fd = os.open(name, _DIR | os.O_NOFOLLOW, dir_fd=parent)
        _chown(os.chown, fd_path(fd), uid, gid)
        os.chmod(fd_path(fd), mode)
        return fd
    if stat.S_ISREG(st.st_mode):
        fin = os.open(fd_path(src_fd), os.O_RDONLY | os.O_CLOEXEC)   # the inode that was checked, not a name
        try:
            out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                          dir_fd=parent)
            try:
                _copy_data(fin, out)
                _chown(os.fchown, out, uid, gid)
                os.fchmod(out, mode)
                os.utime(out, ns=times)
            finally:
                os.close(out)
        finally:
            os.close(fin)
        return None
    if stat.S_ISFIFO(st.st_mode):
        os.mkfifo(name, mode, dir_fd=parent)
        _chown(os.chown, name, uid, gid, dir_fd=parent, follow_symlinks=False)
        return None
    # sockets and device nodes in a build context are skipped, as Docker's tar would fail on sockets
    return None


def _copy_data(fin: int, out: int) -> None:
    """Copy the rest of ``fin`` into ``out``: sendfile(2) in the kernel, a read/write loop
    where it is refused (no Python file objects: a COPY is mostly small files)."""
    try:
        while os.sendfile(out, fin, None, 1 << 30):
            pass
        return
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOSYS):
            raise
    while chunk := os.read(fin, 1 << 20):
        view = memoryview(chunk)
        while view:
            view = view[os.write(out, view):]


def copy_tree(root_fd: int, src_st: os.stat_result, entries: Iterable[Entry], dest: str,
              uid: int, gid: int, chmod: int | None) -> int:
    """Copy a directory's visible ``entries`` into the image's directory ``dest``; how many were copied.

    ``dest`` is made when missing (with the source directory's mode).  Each
    entry is created in its parent's descriptor: the directories this copy
    made are the ones it descends into.  A parent the copy did not make (a
    ``.dockerignore`` exception brings back ``x/file`` without ``x``) is
    resolved in the image, where a symlink ``x -> /etc`` means the image's
    ``/etc``, never the host's.
    """
    dest = "/" + dest.strip("/")
    mode = chmod if chmod is not None else stat.S_IMODE(src_st.st_mode)
    top = make_dirs(root_fd, dest, uid, gid, last_mode=mode)
    # (path below dest, descriptor, the source's times to set once its entries are written)
    stack: list[tuple[str, int, tuple[int, int] | None]] = [("", top, None)]
    count = 0
    try:
        for sub, fd, st in entries:
            parent_sub = posixpath.dirname(sub)
            while len(stack) > 1 and not (parent_sub == stack[-1][0] or parent_sub.startswith(stack[-1][0] + "/")):
                _finish(*stack.pop())
            if stack[-1][0] != parent_sub:
                stack.append((parent_sub, make_dirs(root_fd, posixpath.join(dest, parent_sub), uid, gid), None))
            made = copy_entry(fd, st, stack[-1][1], posixpath.basename(sub), uid, gid, chmod)
            count += 1
            if made is not None:
                stack.append((sub, made, (st.st_atime_ns, st.st_mtime_ns)))
    finally:
        while stack:
            _finish(*stack.pop())
    return count


def _finish(_sub: str, fd: int, times: tuple[int, int] | None) -> None:
    """A copied directory is complete: its source's times (writing into it changed them), then close it."""
    try:
        if times is not None:
            os.utime(fd_path(fd), ns=times)
    finally:
        os.close(fd)


def write_content(parent: int, name: str, content: bytes, uid: int, gid: int, mode: int) -> None:
    """A heredoc or a downloaded file: written fresh at ``name`` in the directory ``parent``."""
    _remove_at(parent, name)
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=parent)
    with os.fdopen(fd, "wb") as f:
        f.write(content)
        _chown(os.fchown, f.fileno(), uid, gid)
        os.fchmod(f.fileno(), mode)


def check_many(sources: int, dest: str, keyword: str) -> None:
    if sources > 1 and not dest.endswith("/"):
        raise BuildError(f"When using {keyword} with more than one source file, the destination "
                         f"must be a directory and end with a /: {dest}",
                         hint=f"write {dest}/ as the destination")


def is_archive(fd: int) -> bool:
    """A local tar (plain, gzip, bzip2 or xz compressed) that ADD unpacks; anything else is copied.

    ``fd`` is the source's descriptor: the file looked at is the one that was resolved.
    """
    import bz2
    import gzip
    import lzma
    path = fd_path(fd)
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
        opener = (gzip.open if magic.startswith(b"\x1f\x8b") else bz2.open if magic.startswith(b"BZh")
                  else lzma.open if magic.startswith(b"\xfd7zXZ") else None)
        if opener is None:
            with open(path, "rb") as f:
                head = f.read(512)
        else:
            with opener(path, "rb") as f:  # type: ignore[operator]
                head = f.read(512)
    except (OSError, EOFError, lzma.LZMAError, ValueError):
        return False
    return len(head) >= 262 and head[257:262] == b"ustar"
