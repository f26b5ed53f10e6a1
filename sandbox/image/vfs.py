"""The vfs storage driver: a full copy of the image for every container.

overlayfs cannot be mounted everywhere: not by a user without a user
namespace (Binder), not on a file system overlay refuses as its upper layer,
not inside some containers.  There the engine does what Docker's ``vfs``
driver does -- no copy-on-write, just copies:

* **one base tree per chain id** (``layers/<chain-hex>/merged``, made by
  :meth:`~sandbox.image.layers.LayerStore.base_tree`): the image's layers
  applied in order onto a copy of the nearest lower base tree.  It is the
  engine's own and read-only to everyone: containers get copies of it, and
  a container's changes are found by comparing its tree with it.  Keeping
  it costs one merged tree of disk per image (Docker's vfs keeps one per
  *layer*), and saves applying every layer blob again for every container;
  comparing against the stacked layer directories instead would need
  overlay's whiteout rules re-done in Python for every ``diff``.
* **a container's rootfs** (:func:`make_rootfs`): a copy of its image's base
  tree with the init layer's files laid over it, in the container's
  directory, made at create; nothing is mounted for it.  The identity of
  each directory it starts with is recorded beside it, so a directory the
  container removed and made again is told apart from the one it had --
  overlay marks that one *opaque*, and so does :func:`rootfs_diff`.
* **copies are fast where the file system allows** (:func:`copy_tree`):
  ``FICLONE`` shares the extents (btrfs, xfs with reflink, bcachefs), else
  ``copy_file_range`` copies inside the kernel (ext4, tmpfs).  Never hard
  links to the source: the container would write through to the image.

What vfs costs: every container and every build step (COPY, ADD, WORKDIR,
RUN) pays a full copy of its image in time and disk, where overlay pays
nothing; removing a container deletes that copy.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import json
import os
import stat
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LayerError, SandboxError, StoreFull, UsageError
from . import fsutil
from .tarlayer import TreeDiff, tree_diff
from .tarlayer.format import xattr_allowed

DRIVERS = ("overlay", "fuse-overlayfs", "vfs")
#: Forces the driver of what this process creates: "overlay", "fuse-overlayfs" or "vfs".
DRIVER_ENV = "SANDBOX_STORAGE_DRIVER"
#: Beside a vfs container's rootfs: the identity of each directory it started with.
DIRS_FILE = "vfs-dirs.json"
#: The overlay probe's answer, in the store's run dir (``<root>/run``, removed at each boot).
PROBE_FILE = "overlay-probe.json"
#: The program that mounts the overlay layout where the kernel's overlay cannot be mounted.
FUSE_OVERLAYFS = "fuse-overlayfs"

#: linux/fs.h: _IOW(0x94, 9, int), "share the source file's extents" (a reflink).
FICLONE = 0x40049409
#: linux/fs.h: _IOR('v', 1, long), the inode's generation: new for every inode made,
#: so a directory made again under a reused inode number is still another one.
FS_IOC_GETVERSION = 0x80087601

_LIST = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: FICLONE and copy_file_range refuse with these when the file system cannot (or not here).
_CANNOT = (errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EBADF,
           errno.EPERM)


# --------------------------------------------------------------------------- choosing
#
# Three drivers, two layouts.  ``overlay`` and ``fuse-overlayfs`` share the
# overlay layout (lower layers under ``layers/``, a container's ``upper``/``work``
# dirs, the same diff and commit code); they differ in what mounts it: the
# kernel's overlayfs, or the ``fuse-overlayfs`` program (a FUSE daemon that
# lives as long as the mount).  The second gets a driver name of its own, as
# Docker's rootless mode names it, not Podman's "overlay with a mount_program":
# ``sandbox info`` and the API's ``Driver`` then say what this host really uses
# without a second field, ``--storage-driver fuse-overlayfs`` forces it with
# the word that is shown, and every caller that only asks "vfs or not" (build
# steps, ``cp``, ``diff``, commit) already treats it as the overlay layout it is.
#
# Who mounts with fuse-overlayfs is decided per mount by
# :func:`~sandbox.image.layers.mount_overlay`: when the process forces it
# (``$SANDBOX_STORAGE_DRIVER``; for containers that is the supervisor's
# environment, for build steps the building client's), and whenever the
# kernel refuses an overlay mount and fuse-overlayfs is usable.  The upper
# dirs both write are read by the same code (whiteouts as 0/0 devices, opaque
# marks as xattrs; see :mod:`sandbox.image.tarlayer`), so a layer made under
# one can be mounted by the other.


def forced_driver(value: str | None = None) -> str | None:
    """The driver ``value`` (default: ``$SANDBOX_STORAGE_DRIVER``) forces; None when unset.

    ``overlay2`` (Docker's name) is taken for ``overlay``, ``fuse`` for ``fuse-overlayfs``.
    """
    raw = (os.environ.get(DRIVER_ENV, "") if value is None else value).strip().lower()
    if not raw:
        return None
    raw = {"overlay2": "overlay", "fuse": FUSE_OVERLAYFS}.get(raw, raw)
    if raw not in DRIVERS:
        raise UsageError(f"unknown storage driver {raw!r} (from {DRIVER_ENV} or --storage-driver)",
                         hint="use overlay, fuse-overlayfs or vfs")
    return raw


def forces_fuse() -> bool:
    """Whether this process mounts every overlay with fuse-overlayfs (``$SANDBOX_STORAGE_DRIVER``)."""
    try:
        return forced_driver() == FUSE_OVERLAYFS
    except UsageError:
        return False     # reported where the driver is chosen, not at every mount


@functools.cache
def fuse_overlayfs() -> str | None:
    """The fuse-overlayfs program when it can mount here, else None (asked once per process).

    It needs to be on ``$PATH`` and ``/dev/fuse`` to open for reading and
    writing: Debian makes it 0666, some hosts keep it 0600 (root only), and
    a container may not have it at all.
    """
    import shutil
    program = shutil.which(FUSE_OVERLAYFS)
    if program is None:
        return None
    try:
        os.close(os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC))
    except OSError:
        return None
    return program


def _probe_key(scratch: str) -> str:
    """What could change the probe's answer: kernel, boot, user and user namespace, file system.

    The boot id covers a module loaded or a sysctl changed since (both need
    no reboot, but the run dir it lives in is kept only within a boot: a
    reboot is the common way they change); the namespace's inode and uid map
    tell a rootless holder from root and one holder from the next; the
    device of ``scratch`` tells the store's file system from another one
    mounted there since.
    """
    parts = [os.uname().release, str(os.geteuid())]
    for path in ("/proc/sys/kernel/random/boot_id", "/proc/self/uid_map"):
        try:
            parts.append(" ".join(Path(path).read_text().split()))
        except OSError:
            parts.append("?")
    try:
        parts.append(str(os.stat("/proc/self/ns/user").st_ino))
    except OSError:
        parts.append("?")
    parts.append(str(os.stat(scratch).st_dev))
    return "|".join(parts)


@functools.cache
def overlay_works(scratch: str) -> bool:
    """Whether the kernel's overlay mounts under ``scratch`` (the store's tmp dir).

    Found by a real mount, once per host situation: the answer is kept in the
    store's run dir (:data:`PROBE_FILE`) under :func:`_probe_key`, so a cold
    client reads a small file instead of mounting and unmounting (~6 ms).
    """
    if os.geteuid() != 0:
        return False
    cache = Path(scratch).parent / "run" / PROBE_FILE
    try:
        key = _probe_key(scratch)
    except OSError:
        return _probe_overlay(scratch)
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        saved = json.loads(cache.read_bytes())
        if saved["key"] == key:
            return bool(saved["overlay"])
    works = _probe_overlay(scratch)
    with contextlib.suppress(OSError):   # a read-only run dir: the answer is found again next time
        cache.parent.mkdir(mode=0o700, exist_ok=True)
        fsutil.atomic_write_json(cache, {"key": key, "overlay": works})
    return works


def _probe_overlay(scratch: str) -> bool:
    """Try a real overlay mount under ``scratch``."""
    from .. import kernel  # the store works without ctypes when this is never asked
    with contextlib.suppress(OSError):
        if "overlay" not in Path("/proc/filesystems").read_text():
            return False
    try:
        with tempfile.TemporaryDirectory(dir=scratch) as tmp:
            dirs = [Path(tmp, n) for n in ("lower", "upper", "work", "merged")]
            for d in dirs:
                d.mkdir()
            kernel.mount("overlay", dirs[3], "overlay", 0,
                         f"lowerdir={dirs[0]},upperdir={dirs[1]},workdir={dirs[2]}")
            kernel.umount(dirs[3])
        return True
    except Exception:
        return False


def storage_driver(scratch: Path, forced: str | None = None) -> str:
    """The driver for what is made now: ``forced`` or ``$SANDBOX_STORAGE_DRIVER``, else
    overlay when a real overlay mount works under ``scratch``, else fuse-overlayfs where
    it can mount, else vfs (the order of Docker's rootless mode)."""
    driver = forced_driver(forced)
    if driver == FUSE_OVERLAYFS and fuse_overlayfs() is None:
        raise UsageError("the fuse-overlayfs storage driver is forced, but it cannot mount here",
                         hint="install fuse-overlayfs and make /dev/fuse readable and writable "
                              "(Debian: mode 0666), or use overlay or vfs")
    if driver:
        return driver
    if overlay_works(str(scratch)):
        return "overlay"
    return FUSE_OVERLAYFS if fuse_overlayfs() is not None else "vfs"


# --------------------------------------------------------------------------- copying


@dataclass
class CopyStats:
    """What one :func:`copy_tree` did: entries, bytes of file content, how, and how long."""

    entries: int = 0
    bytes: int = 0
    cloned: int = 0        # files whose extents were shared (FICLONE)
    seconds: float = 0.0
    #: relative path ("" for the root) -> identity of each directory made (see dir_identity)
    dirs: dict[str, list[int]] = field(default_factory=dict)


def dir_identity(fd: int) -> list[int]:
    """What tells a directory from one made later at the same path: [inode, generation].

    The generation is -1 where the file system does not report one (tmpfs,
    whose inode numbers are not reused soon anyway).
    """
    st = os.fstat(fd)
    buf = bytearray(8)
    try:
        fcntl.ioctl(fd, FS_IOC_GETVERSION, buf)
        generation = int.from_bytes(buf[:4], "little")
    except OSError:
        generation = -1
    return [st.st_ino, generation]


def copy_tree(src: Path, dst: Path, *, merge: bool = False) -> CopyStats:
    """Copy the tree ``src`` to ``dst``: content, modes, owners, mtimes, allowlisted xattrs.

    ``dst`` is made (or must be an empty directory); hard links inside
    ``src`` stay hard links inside ``dst``, never to ``src``.  With ``merge``
    ``dst`` may hold a tree already: a directory there stays (with its own
    metadata) and the copy goes into it; anything else in the way is
    replaced.  Symlinks are copied, never followed; sockets are skipped.
    A full disk is :class:`~sandbox.errors.StoreFull`.
    """
    t0 = time.monotonic()
    src_fd = os.open(src, _LIST)
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(dst, 0o700)
        dst_fd = os.open(dst, _LIST)
        try:
            copier = _Copier(dst_fd)
            try:
                copier.copy_dir(src_fd, dst_fd, "", merge)
                if not merge:
                    copier.set_meta(src_fd, dst_fd, os.fstat(src_fd))
                copier.stats.dirs.setdefault("", dir_identity(dst_fd))
            except OSError as e:
                if e.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise StoreFull(f"a copy of {src}", str(dst.parent)) from None
                raise LayerError(f"cannot copy {src} to {dst}: {e.strerror or e}"
                                 + (f" ({e.filename})" if e.filename else "")) from e
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)
    copier.stats.seconds = time.monotonic() - t0
    return copier.stats


class _Copier:
    """One tree copy: every entry reached from its parent's descriptor, nothing followed."""

    def __init__(self, dst_root: int) -> None:
        self.dst_root = dst_root
        self.stats = CopyStats()
        #: (dev, ino) of a source file with several links -> its first copy, relative to dst_root
        self.links: dict[tuple[int, int], str] = {}
        self.clone = True
        self.in_kernel = True
        self.is_root = os.geteuid() == 0

    def copy_dir(self, sfd: int, dfd: int, rel: str, merge: bool) -> None:
        with os.scandir(sfd) as it:
            entries = list(it)
        for entry in entries:
            name = entry.name
            st = entry.stat(follow_symlinks=False)
            child = f"{rel}/{name}" if rel else name
            if merge and self._merge_into(sfd, dfd, name, st, child):
                continue
            self.copy_entry(sfd, dfd, name, st, child)

    def _merge_into(self, sfd: int, dfd: int, name: str, st: os.stat_result, child: str) -> bool:
        """Merge mode: True when ``name`` was a directory in both and has been merged;
        else whatever is in the way is removed and the caller copies the entry."""
        try:
            old = os.lstat(name, dir_fd=dfd)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(old.st_mode) and stat.S_ISDIR(st.st_mode):
            s2, d2 = os.open(name, _LIST, dir_fd=sfd), os.open(name, _LIST, dir_fd=dfd)
            try:
                self.copy_dir(s2, d2, child, True)
            finally:
                os.close(s2)
                os.close(d2)
            return True
        _remove_at(dfd, name, old)
        return False

    def copy_entry(self, sfd: int, dfd: int, name: str, st: os.stat_result, rel: str) -> None:
        fmt = stat.S_IFMT(st.st_mode)
        self.stats.entries += 1
        if fmt == stat.S_IFDIR:
            os.mkdir(name, 0o700, dir_fd=dfd)
            s2, d2 = os.open(name, _LIST, dir_fd=sfd), os.open(name, _LIST, dir_fd=dfd)
            try:
                self.copy_dir(s2, d2, rel, False)
                self.set_meta(s2, d2, st)      # last: the mtime, after the entries went in
                self.stats.dirs[rel] = dir_identity(d2)
            finally:
                os.close(s2)
                os.close(d2)
        elif fmt == stat.S_IFREG:
            self._copy_file(sfd, dfd, name, st, rel)
        elif fmt == stat.S_IFLNK:
            os.symlink(os.readlink(name, dir_fd=sfd), name, dir_fd=dfd)
            self._chown(lambda: os.chown(name, st.st_uid, st.st_gid, dir_fd=dfd, follow_symlinks=False))
            os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dfd, follow_symlinks=False)
        elif fmt in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO):
            os.mknod(name, st.st_mode, st.st_rdev, dir_fd=dfd)
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
            try:
                where = f"/proc/self/fd/{fd}"
                self._chown(lambda: os.chown(where, st.st_uid, st.st_gid))
                os.chmod(where, stat.S_IMODE(st.st_mode))
                os.utime(where, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(fd)
        else:
            self.stats.entries -= 1     # a socket lives only as long as the process that bound it

    def _copy_file(self, sfd: int, dfd: int, name: str, st: os.stat_result, rel: str) -> None:
        if st.st_nlink > 1:
            first = self.links.setdefault((st.st_dev, st.st_ino), rel)
            if first != rel:
                os.link(first, name, src_dir_fd=self.dst_root, dst_dir_fd=dfd, follow_symlinks=False)
                return
        src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=sfd)
        try:
            dst = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                          0o600, dir_fd=dfd)
            try:
                self._copy_data(src, dst, st.st_size)
                self.set_meta(src, dst, st)
            finally:
                os.close(dst)
        finally:
            os.close(src)

    def _copy_data(self, src: int, dst: int, size: int) -> None:
        self.stats.bytes += size
        if size == 0:
            return
        if self.clone:
            try:
                fcntl.ioctl(dst, FICLONE, src)
                self.stats.cloned += 1
                return
            except OSError as e:
                if e.errno not in _CANNOT:
                    raise
                self.clone = False      # this file system cannot: not asked again for this tree
        done = 0
        if self.in_kernel:
            try:
                while True:
                    n = os.copy_file_range(src, dst, 1 << 30)
                    if n == 0:
                        return
                    done += n
            except OSError as e:
                if e.errno not in _CANNOT or done:
                    raise
                self.in_kernel = False
        while chunk := os.read(src, 1 << 20):
            os.write(dst, chunk)

    def set_meta(self, src: int, dst: int, st: os.stat_result) -> None:
        """Owner, mode, xattrs, times of ``dst`` from ``src`` (both real descriptors).

        The owner first: chown clears the set-id bits the mode then sets.
        """
        self._chown(lambda: os.fchown(dst, st.st_uid, st.st_gid))
        os.fchmod(dst, stat.S_IMODE(st.st_mode))
        with contextlib.suppress(OSError):   # a file system without xattrs has none to copy
            for attr in os.listxattr(src):
                if xattr_allowed(attr):
                    try:
                        os.setxattr(dst, attr, os.getxattr(src, attr))
                    except OSError as e:
                        if self.is_root and e.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
                            raise
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))

    def _chown(self, change: Any) -> None:
        """Keep the owner; without root a foreign owner cannot be kept and the copy stays ours
        (as a layer reads it back: see ``tarlayer.stored_owner``)."""
        try:
            change()
        except PermissionError:
            if self.is_root:
                raise


def _remove_at(dfd: int, name: str, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        import shutil
        shutil.rmtree(name, dir_fd=dfd)
    else:
        os.unlink(name, dir_fd=dfd)


# --------------------------------------------------------------------------- containers


def make_rootfs(base: Path | None, init: Path, rootfs: Path) -> CopyStats:
    """A vfs container's root: a copy of ``base`` (its image's base tree; None for an
    image without layers) with the init layer ``init`` laid over it, at ``rootfs``.

    Over the image, the init layer's files replace what is there and its
    directories merge into the image's, which keep their own metadata (an
    image's ``/etc`` stays as the image made it, as with Docker's vfs).  The
    directories' identities go to ``DIRS_FILE`` beside ``rootfs``.
    """
    if base is not None:
        stats = copy_tree(base, rootfs)
    else:
        rootfs.mkdir(mode=0o755, exist_ok=True)
        stats = CopyStats()
    laid = copy_tree(init, rootfs, merge=True)
    stats.entries += laid.entries
    stats.dirs.update({k: v for k, v in laid.dirs.items() if k})
    fsutil.atomic_write_json(rootfs.parent / DIRS_FILE, {"dirs": stats.dirs})
    return stats


def same_dir_check(dirs: dict[str, list[int]]) -> Any:
    """``tree_diff``'s ``same_dir`` for directories whose identities were recorded in ``dirs``."""
    def same(rel: str, fd: int) -> bool:
        return dirs.get(rel) == dir_identity(fd)
    return same


def rootfs_diff(base: Path | None, init: Path, rootfs: Path) -> TreeDiff:
    """What a vfs container changed: its rootfs against the init layer over its image's base tree.

    The container may be running: the rootfs is read from descriptors, never
    through a symlink it swaps in (see :func:`~sandbox.image.tarlayer.tree_diff`).
    """
    try:
        dirs = json.loads((rootfs.parent / DIRS_FILE).read_bytes())["dirs"]
    except (OSError, ValueError, KeyError):
        raise SandboxError(f"the vfs container in {rootfs.parent} has no record of its directories "
                           f"({DIRS_FILE})", hint="the container was not made completely; remove it") from None
    lowers = [init] if base is None else [init, base]
    return tree_diff(lowers, rootfs, by_mtime=True, same_dir=same_dir_check(dirs))


def in_tree(root: Path, rel: str) -> bool:
    """Whether ``rel`` exists in ``root``, every directory on the way a real one (no symlink followed)."""
    where = root
    for part in rel.split("/"):
        try:
            st = os.lstat(where)
        except (FileNotFoundError, NotADirectoryError):
            return False
        if not stat.S_ISDIR(st.st_mode):
            return False
        where = where / part
    return os.path.lexists(where)


def diff_lines(diff: TreeDiff, base: Path | None) -> list[tuple[str, str]]:
    """``docker diff`` of a vfs change, as overlay's diff reads it from an upper directory.

    Every path the layer holds is listed, with the parents a layer adds (the
    directories overlay copies up): "C" if the image has it, else "A"; "D"
    for each deletion and for each of the image's entries an opaque
    directory hides.
    """
    kinds: dict[str, str] = {}

    def add(rel: str) -> None:
        if rel not in kinds:
            kinds[rel] = "C" if base is not None and in_tree(base, rel) else "A"

    def parents(rel: str) -> None:
        parts = rel.split("/")
        for i in range(1, len(parts)):
            add("/".join(parts[:i]))

    for rel in diff.changed:
        add(rel)
        parents(rel)
    for rel in diff.deleted:
        kinds[rel] = "D"
        parents(rel)
    for rel in diff.opaque:
        for gone in (os.listdir(base / rel) if base is not None and in_tree(base, rel)
                     and os.path.isdir(base / rel) and not os.path.islink(base / rel) else []):
            if f"{rel}/{gone}" not in kinds:
                kinds[f"{rel}/{gone}"] = "D"
    return sorted(((k, "/" + p) for p, k in kinds.items()), key=lambda kv: kv[1])


def write_diff(root: Path, diff: TreeDiff, out: Any) -> None:
    """``diff`` of the tree ``root`` as an OCI layer tar on ``out``.

    The same entries overlay's upper directory gives for the same change:
    the changed paths and their parents, ``.wh.NAME`` for each deletion, a
    ``.wh..wh..opq`` marker in each opaque directory (``tarlayer.write_tree``).
    """
    from .tarlayer import write_tree
    write_tree(root, out, paths=diff.changed, deleted=diff.deleted, opaque=diff.opaque)
