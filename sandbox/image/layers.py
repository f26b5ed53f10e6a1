"""Layer blobs and unpacked layers.

Writing: :func:`write_layer_blob` turns a tar producer into a compressed blob in
one pass, hashing the uncompressed stream (the diff_id, which the image config
lists) and the compressed one (the blob digest, which the manifest lists).

Unpacking: each layer is unpacked once, into ``layers/<chain-id-hex>/diff``,
keyed by its chain id (the layer *and* everything below it), so two images
sharing a base share its directories.  Each gets a short link ``l/<ID>``:
overlayfs takes every lowerdir in one mount option string that the kernel cuts
at one page, so 60 layers only fit with short names (Docker's overlay2 does
the same).  A layer being unpacked lives in ``layers/<hex>.incomplete`` under
an flock; a killed unpack is removed by ``Store.recover`` at the next start.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from pathlib import Path
TYPE_CHECKING = False  # not typing's: a cold command need not import typing (see sandbox/plain.py)
if TYPE_CHECKING:
    from typing import Any, BinaryIO
from collections.abc import Callable, Iterator

from ..errors import BlobCorrupt, LayerError, LayerNotFound, StoreFull
from . import fsutil
from ..plain import FrozenRecord
from .mediatypes import OCI_LAYER, OCI_LAYER_GZIP
from .store import Store, remove_tree

SHORT_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"  # string.ascii_uppercase + string.digits
SHORT_LEN = 20
#: How the kernel refuses an overlay it cannot mount here: not in this user namespace
#: (EPERM, before 5.11), no overlay module (ENODEV), an upper file system it cannot use
#: (EINVAL, EOPNOTSUPP).  mount_overlay then tries fuse-overlayfs.
_KERNEL_REFUSES = (errno.EPERM, errno.EACCES, errno.ENODEV, errno.EINVAL, errno.EOPNOTSUPP)


class LayerBlob(FrozenRecord):
    """A layer as the manifest and config see it."""

    _fields = ("diff_id", "digest", "size", "media_type")
    diff_id: str
    digest: str
    size: int
    media_type: str

    def __init__(self, diff_id: str, digest: str, size: int, media_type: str) -> None:
        self._set(diff_id=diff_id, digest=digest, size=size, media_type=media_type)


class _HashingSink:
    """A write-only stream that hashes and counts what passes through to ``out``."""

    def __init__(self, out: Any) -> None:
        self.out = out
        import hashlib  # here: a cold command that writes no layer never loads OpenSSL
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        self.out.write(data)
        return len(data)

    def flush(self) -> None:
        pass

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def write_layer_blob(store: Store, produce: Callable[[BinaryIO], None], *, compress: bool = True) -> LayerBlob:
    """Run ``produce(stream)`` (which writes a tar) and store the result as a layer blob.

    gzip is written with mtime 0 and no file name, so the blob digest depends only on
    the tar (and on the zlib build: the diff_id is what stays equal across machines).
    """
    import gzip
    with store.ingest() as writer:
        if compress:
            compressed = _HashingSink(writer)
            gz = gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=6)
            plain = _HashingSink(gz)
            produce(plain)  # type: ignore[arg-type]
            gz.close()
            digest = writer.commit()
            return LayerBlob(plain.digest, digest, writer.size, OCI_LAYER_GZIP)
        plain = _HashingSink(writer)
        produce(plain)  # type: ignore[arg-type]
        digest = writer.commit()
        return LayerBlob(digest, digest, writer.size, OCI_LAYER)


def diff_id_of(store: Store, digest: str) -> str:
    """Hash the uncompressed content of a stored layer blob (verifying the blob too)."""
    import hashlib
    h = hashlib.sha256()
    with store.open_blob(digest, "layer") as raw:
        from . import tarlayer  # imported on use: a cold `sandbox run` never unpacks
        stream = tarlayer.open_layer(raw)  # type: ignore[arg-type]
        while chunk := stream.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


class UnpackedLayer(FrozenRecord):
    """A layer unpacked in the store: its chain id, parent, blob and directory."""

    _fields = ("chain_id", "diff_id", "parent", "blob", "size", "link", "path")
    chain_id: str
    diff_id: str
    parent: str | None
    blob: str
    size: int
    link: str
    path: Path

    def __init__(self, chain_id: str, diff_id: str, parent: str | None, blob: str, size: int, link: str,
                 path: Path) -> None:
        self._set(chain_id=chain_id, diff_id=diff_id, parent=parent, blob=blob, size=size, link=link,
                  path=path)


class LayerStore:
    """Unpacked layers of one store, keyed by chain id."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _dir(self, chain_id: str) -> Path:
        return self.store.layers_dir / chain_id.split(":", 1)[1]

    def _lock(self, chain_id: str) -> fsutil.FileLock:
        return fsutil.FileLock(self.store.locks_dir / f"layer-{chain_id.split(':', 1)[1]}.lock")

    def exists(self, chain_id: str) -> bool:
        return (self._dir(chain_id) / "meta.json").is_file()

    def get(self, chain_id: str) -> UnpackedLayer:
        d = self._dir(chain_id)
        try:
            meta = json.loads((d / "meta.json").read_bytes())
        except (FileNotFoundError, ValueError):
            raise LayerNotFound(f"layer {chain_id} is not unpacked in {self.store.layers_dir}") from None
        return UnpackedLayer(chain_id, meta["diff_id"], meta.get("parent"), meta["blob"],
                             int(meta["size"]), meta["link"], d / "diff")

    def all(self) -> list[str]:
        return sorted("sha256:" + e.name for e in os.scandir(self.store.layers_dir)
                      if len(e.name) == 64 and (Path(e.path) / "meta.json").is_file())

    def unpack(self, chain_id: str, parent: str | None, diff_id: str, blob: str) -> UnpackedLayer:
        """Unpack blob ``blob`` as layer ``chain_id`` unless it already is.  Idempotent.

        The blob is read and decompressed once (:func:`tarlayer.unpack_layer`): in
        that pass it is verified against its digest, its tar stream against
        ``diff_id``, and every entry against the safety rules.  It is unpacked into
        ``<hex>.incomplete``, renamed only once all of that held, so a refused or
        corrupt layer leaves no directory behind.
        """
        if self.exists(chain_id):
            return self.get(chain_id)
        with self._lock(chain_id).hold():
            if self.exists(chain_id):  # another process finished it while we waited
                return self.get(chain_id)
            self.store.blob_size(blob)  # BlobNotFound, worded by the store, before any directory
            final = self._dir(chain_id)
            staging = final.with_name(final.name + ".incomplete")
            if os.path.lexists(staging):
                remove_tree(staging)
            (staging / "diff").mkdir(parents=True)
            try:
                from . import tarlayer  # imported on use: a cold `sandbox run` never unpacks
                with open(self.store.blob_path(blob), "rb") as raw:
                    size = tarlayer.unpack_layer(raw, staging / "diff", digest=blob, diff_id=diff_id)
                fsutil.atomic_write_json(staging / "meta.json", {
                    "chain_id": chain_id, "diff_id": diff_id, "parent": parent,
                    "blob": blob, "size": size, "link": self._new_link()})
                os.rename(staging, final)
                fsutil.fsync_dir(final.parent)
            except BaseException as e:
                remove_tree(staging)
                if fsutil.is_disk_full(e):   # not "cannot apply layer entry X": the disk is the cause
                    raise StoreFull(f"layer {chain_id.split(':', 1)[1][:12]}", str(self.store.root)) from None
                raise
            layer = self.get(chain_id)
            self._ensure_link(layer)
        return layer

    def _ensure_link(self, layer: UnpackedLayer) -> None:
        """Create ``l/<link>`` if missing (a killed unpack may have renamed but not linked)."""
        path = self.store.links_dir / layer.link
        if not os.path.lexists(path):
            os.symlink(f"../layers/{layer.path.parent.name}/diff", path)

    def _new_link(self) -> str:
        while True:
            name = "".join(SHORT_ALPHABET[b % len(SHORT_ALPHABET)] for b in os.urandom(SHORT_LEN))
            if not os.path.lexists(self.store.links_dir / name):
                return name

    def remove(self, chain_id: str) -> None:
        with self._lock(chain_id).hold():
            with contextlib.suppress(LayerNotFound):
                layer = self.get(chain_id)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.store.links_dir / layer.link)
            d = self._dir(chain_id)
            if d.exists():
                # Rename first so a half-removed directory is never taken for a layer.
                doomed = d.with_name(d.name + ".incomplete")
                os.rename(d, doomed)
                remove_tree(doomed)

    # -- using layers -----------------------------------------------------------

    def mount(self, chain_ids: list[str], target: Path, *, upper: Path | None = None,
              work: Path | None = None) -> None:
        """Mount the layers (bottom first) on ``target`` with overlayfs.

        With ``upper``/``work`` the mount is writable (a container's rootfs); without,
        it is a read-only view.  Options use absolute short links when they fit in a
        page, and otherwise paths relative to ``l/`` with the mount done from there.
        """
        # Imported here: the store, and every command that only reads it, works without ctypes.
        from .. import kernel
        if not chain_ids:
            raise LayerError("cannot mount an image with no layers")
        layers = [self.get(c) for c in reversed(chain_ids)]  # overlay lists the top first
        for layer in layers:
            self._ensure_link(layer)
        links = [layer.link for layer in layers]
        if upper is None and len(links) == 1:
            kernel.mount(str(self.store.links_dir / links[0]), target, None, kernel.MS_BIND)
            kernel.mount(None, target, None, kernel.MS_BIND | kernel.MS_REMOUNT | kernel.MS_RDONLY)
            return
        extra = f",upperdir={upper},workdir={work}" if upper is not None else ""
        absolute = "lowerdir=" + ":".join(str(self.store.links_dir / l) for l in links) + extra
        if len(absolute) < kernel.PAGE_SIZE - 64:
            mount_overlay(target, absolute)
            return
        with _cwd(self.store.links_dir):
            mount_overlay(target, "lowerdir=" + ":".join(links) + extra)

    def flatten(self, chain_ids: list[str], target: Path) -> int:
        """Apply every layer's blob in order onto ``target`` (the vfs driver's way)."""
        total = 0
        for chain_id in chain_ids:
            layer = self.get(chain_id)
            from . import tarlayer
            total += tarlayer.apply_layer(self.store.blob_path(layer.blob), target, mode="merge")
        return total

    # -- the vfs driver's base trees ----------------------------------------------

    def base_path(self, chain_id: str) -> Path:
        """Where the merged tree of ``chain_id`` and everything below it is kept (see :meth:`base_tree`)."""
        return self._dir(chain_id) / "merged"

    def has_base_tree(self, chain_id: str) -> bool:
        return self.base_path(chain_id).is_dir()

    def base_tree(self, chain_ids: list[str]) -> Path:
        """The merged tree of the unpacked layers ``chain_ids`` (bottom first), made once.

        The vfs driver's read-only base (see :mod:`.vfs`): containers and build
        steps get copies of it and are compared with it.  It is made from a copy
        of the nearest lower chain's tree with the remaining layers applied, in
        a scratch directory renamed in when complete, under the top layer's
        lock; it lives in the layer's own directory, so it goes with the layer.
        The caller holds ``store.transaction()``, as for :meth:`unpack`.
        """
        if not chain_ids:
            raise LayerError("an image with no layers has no base tree")
        final = self.base_path(chain_ids[-1])
        if final.is_dir():
            return final
        from . import tarlayer, vfs
        with self._lock(chain_ids[-1]).hold():
            if final.is_dir():    # another process made it while we waited
                return final
            start, source = 0, None
            for i in range(len(chain_ids) - 2, -1, -1):
                if self.has_base_tree(chain_ids[i]):
                    start, source = i + 1, self.base_path(chain_ids[i])
                    break
            layers = [self.get(c) for c in chain_ids[start:]]   # LayerNotFound before any work
            with self.store.scratch("vfs-") as tmp:
                staging = tmp / "merged"
                if source is not None:
                    vfs.copy_tree(source, staging)
                else:
                    staging.mkdir()
                    os.chmod(staging, 0o755)     # the containers' "/": as an unpacked layer's root
                for layer in layers:
                    tarlayer.apply_layer(self.store.blob_path(layer.blob), staging, mode="merge")
                os.rename(staging, final)
                fsutil.fsync_dir(final.parent)
        return final


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    """chdir for the length of one mount call (only used past the page-size limit)."""
    old = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.chdir(path)
        yield
    finally:
        os.fchdir(old)
        os.close(old)


def check_diff_id(store: Store, blob: str, diff_id: str) -> None:
    """Raise ``BlobCorrupt`` if the uncompressed content of ``blob`` is not ``diff_id``."""
    actual = diff_id_of(store, blob)
    if actual != diff_id:
        raise BlobCorrupt(diff_id, "layer", actual=actual,
                          hint="the layer does not match the diff_id in its image config")


def mount_overlay(target: Path, options: str, flags: int = 0, *, fuse: bool | None = None) -> None:
    """Mount an overlay; in a user namespace (rootless) with ``userxattr``.

    There overlayfs may not use trusted.* xattrs: without ``userxattr`` (Linux 5.11)
    it ignores the layers' opaque marks (the applier writes ``user.overlay.opaque``
    in a user namespace) and removing or replacing an image's directory fails with
    EIO.  See Documentation/filesystems/overlayfs.rst, "Permission model".  A kernel
    before 5.11 knows no ``userxattr`` (EINVAL): then the mount is tried as before.

    The same layout is mounted by fuse-overlayfs (the ``fuse-overlayfs`` driver,
    see :mod:`.vfs`) when ``fuse`` says so, when this process forces that driver
    (``$SANDBOX_STORAGE_DRIVER``), when fuse-overlayfs wrote the upper dir before
    (:func:`_written_by_fuse`), or when the kernel refuses the overlay (an older
    kernel in a user namespace, an upper file system it cannot use) and
    fuse-overlayfs can mount here.  Either way the mount is undone the same
    way, ``umount2`` by its owner; fuse-overlayfs then exits by itself.
    """
    from .. import kernel
    from ..errors import KernelError
    if fuse is None:
        fuse = (os.environ.get("SANDBOX_STORAGE_DRIVER", "").strip().lower() in ("fuse-overlayfs", "fuse")
                or _written_by_fuse(options))
    if fuse:
        _mount_fuse_overlay(target, options, flags)
        return
    attempts = [options + ",userxattr", options] if _in_user_namespace() else [options]
    for n, opts in enumerate(attempts, 1):
        try:
            kernel.mount("overlay", target, "overlay", flags, opts)
            return
        except KernelError as e:
            if n < len(attempts) and e.errno == errno.EINVAL:
                continue
            # EINVAL of "volatile" goes back to the caller, which mounts again without it.
            refused = e.errno in _KERNEL_REFUSES and not (e.errno == errno.EINVAL and _has_option(
                options, "volatile"))
            from .vfs import fuse_overlayfs
            if not refused or fuse_overlayfs() is None:
                raise
            break
    _mount_fuse_overlay(target, options, flags)


def _has_option(options: str, name: str) -> bool:
    return name in options.split(",")


#: Left in the work dir of an upper dir that fuse-overlayfs has mounted (see _written_by_fuse).
FUSE_MARK = ".sandbox-fuse-overlayfs"


def _overlay_option(options: str, name: str) -> str | None:
    for opt in options.split(","):
        key, _, value = opt.partition("=")
        if key == name:
            return value
    return None


def _written_by_fuse(options: str) -> bool:
    """Whether fuse-overlayfs mounted this upper dir before, so it must mount it again.

    The two do not write an upper dir the same way: fuse-overlayfs adds a
    ``.wh..wh..opq`` file to each opaque directory and, in a user namespace,
    marks it with ``user.fuseoverlayfs.opaque``, which the kernel's overlay
    shows as a file and ignores.  So the mount program stays with the upper
    dir, whichever process mounts it later (the supervisor after a restart
    without ``$SANDBOX_STORAGE_DRIVER``, a ``cp`` from a stopped container):
    :func:`_mount_fuse_overlay` leaves :data:`FUSE_MARK` in the work dir, and
    a read-only view (the upper dir as the top lower dir, no work dir) looks
    in the work dir beside it.
    """
    work = _overlay_option(options, "workdir")
    if work is None:
        lowers = _overlay_option(options, "lowerdir")
        if not lowers:
            return False
        work = os.path.join(os.path.dirname(os.path.abspath(lowers.split(":")[0])), "work")
    return os.path.lexists(os.path.join(work, FUSE_MARK))


def _mount_fuse_overlay(target: Path, options: str, flags: int) -> None:
    """Mount the overlay options ``options`` on ``target`` with the fuse-overlayfs program.

    Its own options are the kernel's (lowerdir, upperdir, workdir, volatile);
    ``userxattr`` is the kernel's alone (fuse-overlayfs picks its xattrs by
    itself), relative lower dirs (past the page limit, see
    :meth:`LayerStore.mount`) are made absolute since the program is another
    process, and ``allow_other`` lets the container's users, not only the
    mounting one, in.  The program mounts, forks its daemon and returns once
    the mount is in place; the daemon lives until the mount is undone.  Its
    messages go to a file, not a pipe: the daemon would hold a pipe open.
    """
    import subprocess
    import tempfile
    from .. import kernel
    from ..errors import KernelError
    from .vfs import fuse_overlayfs
    program = fuse_overlayfs()
    if program is None:
        raise KernelError("mount fuse-overlayfs on", str(target), errno.EPERM,
                          hint="install fuse-overlayfs and make /dev/fuse readable and writable, "
                               "or use the vfs storage driver")
    opts = []
    for opt in options.split(","):
        key, _, value = opt.partition("=")
        if key == "userxattr":
            continue
        if key == "lowerdir":
            value = ":".join(os.path.abspath(d) for d in value.split(":"))
        elif key in ("upperdir", "workdir"):
            value = os.path.abspath(value)
        opts.append(f"{key}={value}" if value else key)
    opts.append("allow_other")
    if flags & kernel.MS_RDONLY:
        opts.append("ro")
    work = _overlay_option(options, "workdir")
    if work is not None:      # before the mount: a process killed right after it leaves the mark
        with open(os.path.join(os.path.abspath(work), FUSE_MARK), "a"):
            pass
    with tempfile.TemporaryFile() as err:
        rc = subprocess.run([program, "-o", ",".join(opts), os.path.abspath(target)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                            close_fds=True).returncode
        if rc != 0:
            err.seek(0)
            said = " ".join(err.read().decode(errors="replace").split())[-500:]
            raise KernelError("mount fuse-overlayfs on", str(target), errno.EIO,
                              hint=f"fuse-overlayfs exited with {rc}: {said}" if said else None)


def _in_user_namespace() -> bool:
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False
