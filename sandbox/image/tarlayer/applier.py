"""The write pass: applying checked layer entries with every path walked from a directory fd.

:class:`Applier` never opens a path by name from the root of the file system:
every directory is reached one component at a time with ``O_NOFOLLOW`` from a
descriptor of the target, and everything is created relative to its parent's
descriptor, so even a race (a symlink swapped in after the check) cannot lead
it outside.  In ``merge`` mode a whiteout removes what lower layers put in the
target, at the first touch of the path it hides; in ``overlay`` mode whiteouts
become overlayfs's own 0/0 devices and opaque xattrs.  Directory modes and
mtimes are set last (:meth:`Applier.finish_dirs`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import stat
import sys
import tarfile
from collections.abc import Iterator

from ...errors import LayerError
from .checking import Entry, Plan, needs_root, split_name
from .format import CHUNK, CORRUPT_HINT, OVERLAY_OPAQUE, PAX_XATTR, source_date_epoch, xattr_allowed
from .reading import read_errors

__all__ = ["Applier", "fs_errors"]

log = logging.getLogger(__name__)

_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@contextlib.contextmanager
def fs_errors(name: str) -> Iterator[None]:
    """An OSError while writing names the entry; the errno stays in __cause__."""
    try:
        yield
    except OSError as e:
        hint = "is this running without root?" if e.errno in (errno.EPERM, errno.EACCES) else None
        raise LayerError(f"cannot apply layer entry {name!r}: {e.strerror or e}", hint=hint) from e
    except (ValueError, OverflowError) as e:  # a number or name the check pass did not foresee
        raise LayerError(f"cannot apply layer entry {name!r}: {e}", hint=CORRUPT_HINT) from e


def _proc(fd: int) -> str:
    """A path for an O_PATH descriptor: chmod/chown/setxattr on it reach that inode only."""
    return f"/proc/self/fd/{fd}"


def _mtime_ns(member: tarfile.TarInfo) -> int:
    return int(member.mtime * 1_000_000_000) if isinstance(member.mtime, float) \
        else int(member.mtime) * 1_000_000_000


def _set_xattrs(where: int | str, member: tarfile.TarInfo, is_root: bool) -> None:
    """Set the allowlisted SCHILY.xattr records (never overlay's own xattrs)."""
    for key in sorted(member.pax_headers):
        name = key[len(PAX_XATTR):]
        if not key.startswith(PAX_XATTR) or not xattr_allowed(name):
            continue
        value = member.pax_headers[key].encode("utf-8", "surrogateescape")
        try:
            os.setxattr(where, name, value)
        except OSError as e:
            skip = e.errno == errno.ENOTSUP or (
                not is_root and e.errno in (errno.EPERM, errno.EACCES))
            if not skip:
                raise
            log.debug("xattr %s of %s not set: %s", name, member.name, e.strerror)


def _remove_at(dir_fd: int, name: str) -> None:
    """Remove ``name`` in ``dir_fd``, a directory recursively; symlinks are never followed."""
    try:
        st = os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
    elif sys.version_info >= (3, 11):
        shutil.rmtree(name, dir_fd=dir_fd)
    else:  # rmtree's fd-based walk, entered through the parent's descriptor
        shutil.rmtree(os.path.join(_proc(dir_fd), name))


class Applier:
    """The write pass: every path is walked from ``root_fd`` with O_NOFOLLOW."""

    def __init__(self, root_fd: int, mode: str, plan: Plan) -> None:
        self.root_fd = root_fd
        self.mode = mode
        merge = mode == "merge"
        self.pending_whiteouts = set(plan.whiteouts) if merge else set()
        self.pending_opaques = set(plan.opaques) if merge else set()
        self.dirs: dict[str, tarfile.TarInfo] = {}
        self.size = 0
        self.is_root = os.geteuid() == 0
        epoch = source_date_epoch()
        self.implicit_mtime = epoch if epoch is not None else 0
        #: The last parent directory's fd: entries come grouped by directory, and
        #: walking every path from the root again would cost several opens each.
        self._cached: tuple[tuple[str, ...], int] | None = None

    def close(self) -> None:
        self._forget(())

    def _forget(self, comps: list[str] | tuple[str, ...]) -> None:
        """Drop the cached fd if it is ``comps`` or below: that directory is being removed."""
        if self._cached is not None and self._cached[0][:len(comps)] == tuple(comps):
            os.close(self._cached[1])
            self._cached = None

    def _parent(self, comps: list[str]) -> int:
        """The (cached, borrowed) fd of an entry's parent directory, made if missing."""
        if self._cached is not None and self._cached[0] == tuple(comps):
            return self._cached[1]
        fd = self._open_dir(comps, create=True)
        assert fd is not None
        self._forget(())
        self._cached = (tuple(comps), fd)
        return fd

    def apply(self, entry: Entry) -> None:
        with fs_errors(entry.name):
            if self.mode == "merge":
                self._settle(entry.comps)
            if entry.action == "entry":
                self._write(entry)
            elif self.mode == "overlay" and entry.action == "whiteout":
                self._overlay_whiteout(entry)
            elif self.mode == "overlay":
                self._overlay_opaque(entry)

    def _settle(self, comps: list[str]) -> None:
        """Make the removals of this layer's whiteouts before it first touches a path.

        Whiteouts and opaque markers hide only lower layers' files (OCI layer
        spec), so removing at the first touch of a path, before this layer
        writes anything there, makes the result independent of tar order.
        """
        for i in range(len(comps) + 1):
            prefix = "/".join(comps[:i])
            if i and prefix in self.pending_whiteouts:
                self.pending_whiteouts.discard(prefix)
                self._remove(comps[:i])
            if prefix in self.pending_opaques:
                self.pending_opaques.discard(prefix)
                self._clear_dir(comps[:i])

    def _remove(self, comps: list[str]) -> None:
        self._forget(comps)
        pfd = self._open_dir(comps[:-1], create=False)
        if pfd is not None:
            try:
                _remove_at(pfd, comps[-1])
            finally:
                os.close(pfd)

    def _clear_dir(self, comps: list[str]) -> None:
        self._forget(comps)
        try:
            pfd = self._open_dir(comps, create=False)
        except (NotADirectoryError, OSError) as e:
            # A file or symlink in the lower layers where this one has an opaque directory
            # (overlay's mkdir over a whiteout): nothing is below it to hide, and this
            # layer's own entry for the directory replaces it.
            if isinstance(e, NotADirectoryError) or e.errno == errno.ELOOP:
                return
            raise
        if pfd is None:
            return
        try:
            dfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=pfd)
        finally:
            os.close(pfd)
        try:
            for child in os.listdir(dfd):
                _remove_at(dfd, child)
        finally:
            os.close(dfd)

    def _open_dir(self, comps: list[str], *, create: bool) -> int | None:
        """An O_PATH fd of the directory ``comps``, walked without following symlinks.

        Missing directories are made (see _make_implicit_dir) when ``create``,
        else None is returned.  The caller closes the fd.
        """
        cur = os.dup(self.root_fd)
        try:
            for i, comp in enumerate(comps):
                try:
                    nxt = os.open(comp, _DIR_FLAGS, dir_fd=cur)
                except FileNotFoundError:
                    if not create:
                        os.close(cur)
                        return None
                    nxt = self._make_implicit_dir(cur, comp, "/".join(comps[:i + 1]))
                os.close(cur)
                cur = nxt
        except BaseException:
            os.close(cur)
            raise
        return cur

    def _make_implicit_dir(self, pfd: int, name: str, path: str) -> int:
        """A parent directory the tar does not list: 0o755, 0:0, a fixed mtime.

        Nothing about it may depend on the clock, the umask or who runs us, or
        importing the same tar twice would give two diff_ids.  Its mode and
        mtime are recorded like a listed directory's, so finish_dirs sets them
        after its children are written (an entry naming it later replaces them).
        """
        os.mkdir(name, 0o700, dir_fd=pfd)
        fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
        try:
            if self.is_root:
                os.chown(_proc(fd), 0, 0)
            os.chmod(_proc(fd), 0o755)  # not left to the umask
        except BaseException:
            os.close(fd)
            raise
        info = tarfile.TarInfo(path)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, self.implicit_mtime
        self.dirs.setdefault(path, info)
        return fd

    def _write(self, entry: Entry) -> None:
        member = entry.member
        pfd = self._parent(entry.comps[:-1])
        name = entry.comps[-1]
        if member.isdir():
            self._make_dir(pfd, name, entry)
            return
        if member.islnk() and split_name(member.linkname, entry.name) == entry.comps:
            return  # a link to itself: the file is already there
        self._forget(entry.comps)
        _remove_at(pfd, name)
        if member.isreg():
            self._make_file(pfd, name, member)
        elif member.issym():
            self._make_symlink(pfd, name, member)
        elif member.islnk():
            self._make_hardlink(pfd, name, entry)
        else:
            self._make_node(pfd, name, member)

    def _make_dir(self, pfd: int, name: str, entry: Entry) -> None:
        """A directory over a directory keeps its content; its mode and mtime come at the end."""
        try:
            st: os.stat_result | None = os.lstat(name, dir_fd=pfd)
        except FileNotFoundError:
            st = None
        if st is not None and not stat.S_ISDIR(st.st_mode):
            _remove_at(pfd, name)
            st = None
        if st is None:
            os.mkdir(name, 0o700, dir_fd=pfd)
        fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
        try:
            if self.is_root:
                os.chown(_proc(fd), entry.member.uid, entry.member.gid)
            _set_xattrs(_proc(fd), entry.member, self.is_root)
        finally:
            os.close(fd)
        self.dirs.pop(entry.path, None)
        self.dirs[entry.path] = entry.member

    def _make_file(self, pfd: int, name: str, member: tarfile.TarInfo) -> None:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=pfd)
        try:
            self.size += _copy_member(member, fd)
            # Order matters: a write clears setuid and capabilities, chown clears
            # setuid/setgid and security.capability; so content, owner, mode, xattrs.
            if self.is_root:
                os.chown(fd, member.uid, member.gid)
            os.chmod(fd, member.mode & 0o7777)
            _set_xattrs(fd, member, self.is_root)
            ns = _mtime_ns(member)
            os.utime(fd, ns=(ns, ns))
        finally:
            os.close(fd)

    def _make_symlink(self, pfd: int, name: str, member: tarfile.TarInfo) -> None:
        """The target text is stored as it is; symlinks have no mode of their own."""
        os.symlink(member.linkname, name, dir_fd=pfd)
        if self.is_root:
            os.chown(name, member.uid, member.gid, dir_fd=pfd, follow_symlinks=False)
        ns = _mtime_ns(member)
        os.utime(name, ns=(ns, ns), dir_fd=pfd, follow_symlinks=False)

    def _make_hardlink(self, pfd: int, name: str, entry: Entry) -> None:
        link = split_name(entry.member.linkname, entry.name, "its hard link target")
        sfd = self._open_dir(link[:-1], create=False)
        if sfd is None:
            raise LayerError(f"cannot apply layer entry {entry.name!r}: its hard link target "
                             f"{entry.member.linkname!r} does not exist", hint=CORRUPT_HINT)
        try:
            os.link(link[-1], name, src_dir_fd=sfd, dst_dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(sfd)

    def _make_node(self, pfd: int, name: str, member: tarfile.TarInfo) -> None:
        if member.isfifo():
            os.mkfifo(name, 0o600, dir_fd=pfd)
        else:
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            try:
                os.mknod(name, kind | 0o600, os.makedev(member.devmajor, member.devminor),
                         dir_fd=pfd)
            except PermissionError:
                raise needs_root(member.name) from None
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        try:
            if self.is_root:
                os.chown(_proc(fd), member.uid, member.gid)
            os.chmod(_proc(fd), member.mode & 0o7777)
            _set_xattrs(_proc(fd), member, self.is_root)
            ns = _mtime_ns(member)
            os.utime(_proc(fd), ns=(ns, ns))
        finally:
            os.close(fd)

    def _overlay_whiteout(self, entry: Entry) -> None:
        """overlayfs's own whiteout: a 0/0 character device, mode 0, owned by 0:0."""
        pfd = self._parent(entry.comps[:-1])
        self._forget(entry.comps)
        _remove_at(pfd, entry.comps[-1])
        try:
            os.mknod(entry.comps[-1], stat.S_IFCHR, os.makedev(0, 0), dir_fd=pfd)
        except PermissionError:
            raise needs_root(entry.name) from None

    def _overlay_opaque(self, entry: Entry) -> None:
        """trusted.overlay.opaque=y; user.overlay.opaque for rootless (userxattr) mounts."""
        fd = self._open_dir(entry.comps, create=True)
        assert fd is not None
        try:
            try:
                os.setxattr(_proc(fd), OVERLAY_OPAQUE[0], b"y")
            except PermissionError:
                os.setxattr(_proc(fd), OVERLAY_OPAQUE[1], b"y")
        finally:
            os.close(fd)

    def finish_dirs(self) -> None:
        """Directory modes and mtimes last: writing a child changes its parent's mtime,
        and a read-only directory must not stop us from filling it."""
        for path in sorted(self.dirs, key=lambda p: p.count("/"), reverse=True):
            member = self.dirs[path]
            with fs_errors(member.name):
                try:
                    fd = self._open_dir(path.split("/"), create=False)
                except NotADirectoryError:
                    continue  # replaced by a non-directory later in the tar
                if fd is None:
                    continue
                try:
                    os.chmod(_proc(fd), member.mode & 0o7777)
                    ns = _mtime_ns(member)
                    os.utime(_proc(fd), ns=(ns, ns))
                finally:
                    os.close(fd)


def _copy_member(member: tarfile.TarInfo, fd: int) -> int:
    """Stream one member's content into ``fd`` in CHUNK pieces; returns the bytes written."""
    tar = member.tarfile
    assert tar is not None
    with read_errors():
        src = tar.extractfile(member)
    assert src is not None
    remaining = member.size
    while remaining:
        with read_errors():
            chunk = src.read(min(CHUNK, remaining))
        if not chunk:
            raise LayerError(f"layer is not a valid tar archive: {member.name!r} is truncated",
                             hint=CORRUPT_HINT)
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view):]
        remaining -= len(chunk)
    return member.size
