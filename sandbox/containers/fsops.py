"""A container's file system from outside: ``diff``, ``cp`` and ``export``.

``diff`` reads overlayfs's own bookkeeping in the writable layer: a 0/0
character device is a deleted path, the ``overlay.opaque`` xattr a directory
that hides everything below it; anything else in the upper directory was
added (not in any image layer) or changed (it was).  The init layer is left
out by the caller, so mount points never show, as with ``docker diff``.

``cp`` opens every container path with :func:`~sandbox.kernel.open_in_root`
(openat2 ``RESOLVE_IN_ROOT``): the container's files belong to whoever built
the image or runs it, and a symlink such as ``/tmp/x -> /etc/shadow`` must
resolve inside the container, never on the host -- also when the container
swaps the link in after a check, since what is used next is the descriptor,
never the name.  Trees are read from descriptors down; extraction into the
container goes through :func:`~sandbox.image.tarlayer.apply_layer`, which
checks every entry first and writes below a descriptor.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import ArchiveError, NotFound, UsageError
from ..image import tarlayer
from ..kernel.resolve import fd_path, open_in_root

_OPAQUE = ("trusted.overlay.opaque", "user.overlay.opaque", "user.fuseoverlayfs.opaque")
#: fuse-overlayfs (the fuse-overlayfs driver) writes an upper dir in the OCI layer's own
#: spelling where it cannot or need not use the kernel's: a regular ``.wh..wh..opq`` in an
#: opaque directory (beside the xattr, and a 0/0 ``.wh..opq`` it leaves too), and a regular
#: ``.wh.NAME`` for a deleted NAME where it may not mknod the 0/0 device.
_WH = ".wh."
_FUSE_OPAQUE = ".wh..wh..opq"


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(path: str, *, follow: bool = False) -> bool:
    """Whether the directory ``path`` hides the layers below (``follow`` for a ``/proc/self/fd/N`` name)."""
    if os.path.isfile(os.path.join(path, _FUSE_OPAQUE)):
        return True
    for name in _OPAQUE:
        try:
            if os.getxattr(path, name, follow_symlinks=follow) == b"y":
                return True
        except OSError:
            continue
    return False


def _in_lowers(rel: str, lowers: list[Path]) -> bool:
    """Whether ``rel`` exists in the image (the first layer that decides, top first)."""
    for lower in lowers:
        full = os.path.join(lower, rel)
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            # an opaque parent in this layer hides the layers below it
            parent = os.path.dirname(rel)
            while parent:
                if _opaque(os.path.join(lower, parent)):
                    return False
                parent = os.path.dirname(parent)
            continue
        return not _is_whiteout(st)
    return False


def _hidden_by_opaque(child: str, dfd: int, lowers: list[Path]) -> list[tuple[str, str]]:
    """Everything the image had in the opaque directory ``child`` (open as ``dfd``) and the
    container has not made again: each such entry is deleted."""
    present = {n for n in os.listdir(dfd) if not n.startswith(_WH)}
    gone: set[str] = set()
    for lower in lowers:
        with_dir = os.path.join(lower, child)
        if os.path.isdir(with_dir) and not os.path.islink(with_dir):
            gone.update(n for n in os.listdir(with_dir)
                        if not _is_whiteout(os.lstat(os.path.join(with_dir, n))))
    return [("D", f"/{child}/{n}") for n in sorted(gone - present)]


def changes(upper: Path, lowers: list[Path]) -> list[tuple[str, str]]:
    """``docker diff``: ("A" | "C" | "D", "/path"), sorted by path.

    The writable layer belongs to the container, which may be running: it is
    walked from directory descriptors opened with ``O_NOFOLLOW``, so a
    directory swapped for a symlink mid-walk is skipped, never listed through
    the link.  The image's layers (``lowers``) are the store's own.
    """
    out: list[tuple[str, str]] = []
    lower_paths = [Path(p) for p in lowers]

    def walk(rel: str, dfd: int) -> None:
        try:
            names = sorted(os.listdir(dfd))
        except OSError:
            return
        for name in names:
            child = f"{rel}/{name}" if rel else name
            try:
                st = os.lstat(name, dir_fd=dfd)
            except FileNotFoundError:
                continue
            if name == _FUSE_OPAQUE or (name == ".wh..opq" and _FUSE_OPAQUE in names):
                continue                   # fuse-overlayfs's opaque marks, not the container's files
            if name.startswith(_WH) and stat.S_ISREG(st.st_mode):   # fuse-overlayfs's whiteout file
                hidden = name[len(_WH):]
                out.append(("D", "/" + (f"{rel}/{hidden}" if rel else hidden)))
                continue
            if _is_whiteout(st):
                out.append(("D", "/" + child))
                continue
            existed = _in_lowers(child, lower_paths)
            out.append(("C" if existed else "A", "/" + child))
            if not stat.S_ISDIR(st.st_mode):
                continue
            try:
                sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
            except OSError:
                continue        # replaced since the lstat (by a symlink, say): not followed
            try:
                if existed and _opaque(fd_path(sub), follow=True):
                    out.extend(_hidden_by_opaque(child, sub, lower_paths))
                walk(child, sub)
            finally:
                os.close(sub)

    try:
        top = os.open(upper, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return out
    try:
        walk("", top)
    finally:
        os.close(top)
    return sorted(out, key=lambda kv: kv[1])


# --------------------------------------------------------------------------- cp


def clean(path: str) -> str:
    """``path`` made absolute and cleaned lexically, as ``docker cp`` does first."""
    return os.path.normpath("/" + path.lstrip("/")) if path.strip("/") else "/"


@contextlib.contextmanager
def opened(rootfs: Path, path: str, *, follow_last: bool, flags: int = os.O_PATH) -> Iterator[int]:
    """A descriptor of ``path`` inside ``rootfs``, resolved as the container would (see
    :func:`~sandbox.kernel.open_in_root`): the descriptor, not a name, is what is used next,
    so a symlink the container swaps in after this cannot send the copy to the host."""
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = open_in_root(root_fd, clean(path), flags, follow_last=follow_last)
    except FileNotFoundError:
        raise NotFound(f"Could not find the file {path} in container",
                       hint="check the path; `sandbox exec NAME ls` lists what is there") from None
    except NotADirectoryError:
        raise NotFound(f"Could not find the file {path} in container: a component of it is "
                       "not a directory", hint="check the path") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UsageError(f"{path} in the container: too many levels of symbolic links") from None
        raise
    finally:
        os.close(root_fd)
    try:
        yield fd
    finally:
        os.close(fd)


def stat_of(fd: int, name: str) -> dict[str, Any]:
    """docker's ``X-Docker-Container-Path-Stat`` for what ``fd`` holds."""
    st = os.fstat(fd)
    return {"name": name, "size": st.st_size, "mode": st.st_mode, "mtime": st.st_mtime,
            "linkTarget": os.readlink("", dir_fd=fd) if stat.S_ISLNK(st.st_mode) else ""}


def path_stat(rootfs: Path, path: str) -> dict[str, Any]:
    """The stat of ``path`` in the container (its last symlink not followed)."""
    with opened(rootfs, path, follow_last=path.endswith("/")) as fd:
        return stat_of(fd, os.path.basename(clean(path)) or "/")


def copy_out(rootfs: Path, src: str, out: BinaryIO, *, follow_link: bool = False) -> dict[str, Any]:
    """``docker cp CONTAINER:SRC -``: a tar of ``src``; "dir/." gives the contents only.

    The last component's symlink is copied as a link unless ``follow_link``
    (``-L``) or the path ends in "/" or "/."; every other link is resolved in
    the container.  The tree is read from descriptors down (``_TarFromFd``).
    """
    contents_only = src.endswith("/.") or src == "."
    base = os.path.basename(clean(src[:-2] if src.endswith("/.") else src)) or "."
    with opened(rootfs, src, follow_last=follow_link or contents_only or src.endswith("/")) as fd:
        info = stat_of(fd, base)
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            writer = _TarFromFd(tar)
            if contents_only or (stat.S_ISDIR(os.fstat(fd).st_mode) and base == "."):
                writer.children(fd, "")
            else:
                writer.entry(fd, base)
    return info


class _TarFromFd:
    """Writes a tree to a tar reading every entry relative to its parent's descriptor."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.first_link: dict[tuple[int, int], str] = {}

    def entry(self, fd: int, arcname: str) -> None:
        st = os.fstat(fd)
        info = tarfile.TarInfo(arcname)
        info.mode, info.uid, info.gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
        info.mtime = int(st.st_mtime)
        fmt = stat.S_IFMT(st.st_mode)
        if fmt == stat.S_IFDIR:
            info.type = tarfile.DIRTYPE
            self.tar.addfile(info)
            self.children(fd, arcname)
            return
        if fmt == stat.S_IFLNK:
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink("", dir_fd=fd)
        elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
            info.type = tarfile.CHRTYPE if fmt == stat.S_IFCHR else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif fmt == stat.S_IFIFO:
            info.type = tarfile.FIFOTYPE
        elif fmt == stat.S_IFREG:
            first = self.first_link.setdefault((st.st_dev, st.st_ino), arcname) \
                if st.st_nlink > 1 else arcname
            if first != arcname:
                info.type, info.linkname = tarfile.LNKTYPE, first
            else:
                info.size = st.st_size
                with open(fd_path(fd), "rb") as f:
                    self.tar.addfile(info, f)
                return
        else:
            return      # a socket: nothing to copy
        self.tar.addfile(info)

    def children(self, fd: int, prefix: str) -> None:
        listing = os.open(fd_path(fd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            names = sorted(os.listdir(listing))
            for name in names:
                try:
                    child = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=listing)
                except FileNotFoundError:
                    continue    # removed since listed
                try:
                    self.entry(child, f"{prefix}/{name}" if prefix else name)
                finally:
                    os.close(child)
        finally:
            os.close(listing)


def copy_in(rootfs: Path, tar_stream: BinaryIO, dest: str) -> None:
    """``docker cp - CONTAINER:DEST``: extract a tar into the directory ``dest``.

    The destination is opened in the container first and the layer applier
    writes below that descriptor (it never follows a symlink), so nothing in
    the archive and nothing the container does meanwhile can write outside.
    """
    with opened(rootfs, dest, follow_last=True) as fd:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            raise NotFound(f"Could not find the directory {dest} in container",
                           hint="the destination of an archive must be an existing directory")
        if os.fstatvfs(fd).f_flag & os.ST_RDONLY:
            raise UsageError(f"{dest} is on a read-only mount in the container (a :ro volume or bind, "
                             "or --read-only)", hint="copy into a writable path, or mount it read-write")
        data = tar_stream.read()
        tarlayer.apply_layer(io.BytesIO(data), Path(fd_path(fd)), mode="merge")  # type: ignore[arg-type]


def _kind_in(rootfs: Path, path: str) -> str | None:
    """"dir", "other", or None when nothing is at ``path`` in the container."""
    try:
        with opened(rootfs, path, follow_last=True) as fd:
            return "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "other"
    except NotFound:
        return None


def copy_in_path(rootfs: Path, host_src: str, dest: str, *, follow_link: bool = False) -> None:
    """``docker cp [-L] HOSTPATH CONTAINER:DEST`` with docker's rules for where it lands.

    ``-L`` follows a symlink that ``HOSTPATH`` itself is (the host side is the
    user's own; only the container side needs confining).
    """
    contents_only = host_src.endswith("/.")
    src = os.path.normpath(host_src[:-2] if contents_only else host_src)
    if follow_link:
        src = os.path.realpath(src)
    if not os.path.lexists(src):
        raise NotFound(f"could not find the file {host_src} on this machine", hint="check the path")
    kind = _kind_in(rootfs, dest)
    buf = io.BytesIO()
    if kind == "dir":
        # into an existing directory: as its basename (or its contents with "/.")
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            if contents_only:
                for name in sorted(os.listdir(src)):
                    tar.add(os.path.join(src, name), arcname=name, filter=_numeric)
            else:
                tar.add(src, arcname=os.path.basename(src), filter=_numeric)
        buf.seek(0)
        copy_in(rootfs, buf, dest)
        return
    if dest.endswith("/"):
        raise NotFound(f"Could not find the directory {dest} in container",
                       hint="create it first, or drop the trailing /")
    parent_rel, name = os.path.split(clean(dest))
    if os.path.isdir(src) and kind == "other":
        raise UsageError(f"cannot copy a directory onto the file {dest}")
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(src, arcname=name, filter=_numeric)
    buf.seek(0)
    copy_in(rootfs, buf, parent_rel or "/")


def _numeric(ti: tarfile.TarInfo) -> tarfile.TarInfo:
    ti.uname = ti.gname = ""
    return ti


def copy_out_path(rootfs: Path, src: str, host_dest: str, *, follow_link: bool = False) -> None:
    """``docker cp [-L] CONTAINER:SRC HOSTPATH``.

    The archive comes from :func:`copy_out` (confined to the container); on the
    host it is extracted with tarfile's "tar" filter, which refuses members
    that would land outside the destination.
    """
    buf = io.BytesIO()
    copy_out(rootfs, src, buf, follow_link=follow_link)
    buf.seek(0)
    contents_only = src.endswith("/.")
    dest = os.path.abspath(host_dest)
    if os.path.isdir(dest):
        out_dir, rename = dest, None
    else:
        parent = os.path.dirname(dest)
        if not os.path.isdir(parent):
            raise NotFound(f"the destination directory {parent} does not exist", hint="create it first")
        out_dir, rename = parent, os.path.basename(dest)
    with tarfile.open(fileobj=buf, mode="r") as tar:
        members = tar.getmembers()
        if rename is not None and not contents_only and members:
            top = members[0].name.split("/")[0]
            for m in members:
                parts = m.name.split("/")
                if parts[0] == top:
                    m.name = "/".join([rename] + parts[1:])
        if contents_only and rename is not None:
            os.makedirs(dest, exist_ok=True)
            out_dir = dest
        if hasattr(tarfile, "tar_filter"):
            tar.extractall(out_dir, members=members, filter="tar")
        else:
            tar.extractall(out_dir, members=(_tar_filter(m, out_dir) for m in members))  # each checked as it comes


def _tar_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """tarfile's "tar" filter, for Pythons before 3.11.4 (Debian 12's 3.11.2) that have none.

    The same rules: a leading "/" is dropped, a member that would land outside
    ``dest`` (through "..", or through a symlink extracted before it) is
    refused, and setuid, setgid, sticky and group/other write bits are
    cleared.  Like the "tar" filter (and unlike "data"), link targets are kept
    as they are: a container's absolute symlinks are copied out as symlinks.
    """
    dest = os.path.realpath(dest)
    name = member.name.lstrip("/")
    target = os.path.realpath(os.path.join(dest, name))
    if os.path.commonpath([dest, target]) != dest:
        raise ArchiveError(f"refusing {member.name!r}: it would be extracted outside {dest}")
    member.name = name
    member.mode &= 0o755
    return member


def export(rootfs: Path, out: BinaryIO, *, skip: Iterable[str] = ("/proc", "/sys", "/dev")) -> None:
    """``docker export``: the whole file system as a tar (mount-point directories left empty)."""
    skipped = {s.strip("/") for s in skip}
    paths = []
    for dirpath, dirnames, filenames in os.walk(rootfs):
        rel = os.path.relpath(dirpath, rootfs)
        rel = "" if rel == "." else rel
        if rel in skipped:
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            paths.append(f"{rel}/{name}" if rel else name)
    tarlayer.write_tree(Path(rootfs), out, paths=paths)
