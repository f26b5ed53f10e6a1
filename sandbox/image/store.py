"""The image store: an OCI image layout, plus what the engine keeps beside it.

Layout under ``SANDBOX_ROOT``::

    oci/                    a pure OCI image layout (oci-layout, index.json, blobs/sha256/)
    ingest/                 blobs being written; a killed writer's file is removed at the next start
    layers/<chain-hex>/     one unpacked layer per chain id (see layers.py)
    l/<short>               short symlinks to layers/<chain-hex>/diff, for overlay's lowerdir
    meta/images/<id>.json   per-image metadata: repo digests, size, when it was stored
    meta/index.json.bak     the last good index.json, to repair a damaged one
    leases/<holder>.json    what a container, the build cache or a transfer still uses
    locks/                  flock files

Guarantees, one per method family:

* ``put_blob``/``ingest`` are idempotent and content-addressed: a blob appears in
  ``blobs/`` only complete and under the digest of its bytes.
* ``read_blob``/``open_blob`` verify the digest; a mismatch raises ``BlobCorrupt``.
* ``index.json`` and every metadata file are replaced atomically, under the store lock.
* Garbage collection runs with the GC lock held exclusively; every multi-step
  writer (load, import, bootstrap, pull) holds it shared for its whole run, so a
  blob written but not yet tagged is never collected under its feet.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from pathlib import Path
TYPE_CHECKING = False  # not typing's: a cold command need not import typing (see sandbox/plain.py)
if TYPE_CHECKING:
    from typing import IO, Any
from collections.abc import Iterator

from ..errors import BlobCorrupt, BlobNotFound, SandboxError, StoreCorrupt, StoreFull
from ..plain import Record
from . import fsutil
from .mediatypes import FULL_NAME, OCI_INDEX, OCI_LAYOUT_VERSION, REF_NAME, check_digest, sha256_digest

CHUNK = 1 << 20


class Descriptor(Record):
    """An OCI content descriptor."""

    _fields = ("media_type", "digest", "size", "annotations", "platform")

    def __init__(self, media_type: str, digest: str, size: int, annotations: dict[str, str] | None = None,
                 platform: dict[str, Any] | None = None) -> None:
        self.media_type = media_type
        self.digest = digest
        self.size = size
        self.annotations: dict[str, str] = {} if annotations is None else annotations
        self.platform = platform

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            out["platform"] = self.platform
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Descriptor:
        try:
            return cls(obj["mediaType"], check_digest(obj["digest"]), int(obj["size"]),
                       dict(obj.get("annotations") or {}), obj.get("platform"))
        except (KeyError, TypeError, ValueError) as e:
            raise StoreCorrupt(f"malformed descriptor {obj!r}: {e}") from None


class BlobWriter:
    """Writes one blob into ``ingest/``, hashing as it goes; ``commit`` moves it into place.

    The temp file stays flock'ed while open, so start-up recovery can tell a live
    writer from one that was killed.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        token = fsutil.random_hex(16)
        # Created under a dot name that recovery ignores, locked, and only then given
        # its visible name: recovery in another process never sees it unlocked.
        hidden = store.ingest_dir / f".new-{token}"
        self._fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self.path = store.ingest_dir / token
        os.rename(hidden, self.path)
        import hashlib  # here: a cold command that writes no blob never loads OpenSSL
        self._hash = hashlib.sha256()
        self.size = 0
        self.digest: str | None = None
        self._full: StoreFull | None = None

    def write(self, data: bytes) -> int:
        if self._full is not None:
            # A writer on top (tarfile, gzip) flushes its buffer on the way out of the
            # error: it gets the same error, not EBADF from the closed temp file.
            raise self._full
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                self.abort()
                self._full = StoreFull("a blob", str(self._store.root))
                raise self._full from None
            raise
        self._hash.update(data)
        self.size += len(data)
        return len(data)

    def commit(self, expected: str | None = None) -> str:
        """Make the blob visible under its digest; raise ``BlobCorrupt`` if it is not ``expected``."""
        digest = "sha256:" + self._hash.hexdigest()
        if expected is not None and digest != expected:
            self.abort()
            raise BlobCorrupt(expected, actual=digest,
                              hint="the data received was not what its digest promised; fetch it again")
        os.fchmod(self._fd, 0o644)
        os.fsync(self._fd)
        target = self._store.blob_path(digest)
        os.rename(self.path, target)  # idempotent: an existing blob is replaced by identical bytes
        fsutil.fsync_dir(target.parent)
        os.close(self._fd)
        self._fd = -1
        self.digest = digest
        return digest

    def abort(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


class VerifyingReader:
    """A blob reader that raises ``BlobCorrupt`` at EOF when the bytes do not match the digest."""

    def __init__(self, path: Path, digest: str, what: str) -> None:
        self._f = open(path, "rb")
        self._digest = digest
        self._what = what
        import hashlib
        self._hash = hashlib.sha256()
        self._checked = False
        self.size = os.fstat(self._f.fileno()).st_size
        self._done = 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._hash.update(data)
        self._done += len(data)
        # Check on the last byte, not only at EOF: readers that take exactly
        # ``size`` bytes (tarfile.addfile, copyfileobj with a length) never see EOF.
        if (not data or n < 0 or self._done >= self.size) and not self._checked:
            self._checked = True
            actual = "sha256:" + self._hash.hexdigest()
            if actual != self._digest:
                raise BlobCorrupt(self._digest, self._what, actual=actual)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> VerifyingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Store:
    """One ``SANDBOX_ROOT``: the OCI layout and its neighbours.  Safe to share between processes."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        self.oci = self.root / "oci"
        self.blobs_dir = self.oci / "blobs" / "sha256"
        self.ingest_dir = self.root / "ingest"
        self.layers_dir = self.root / "layers"
        self.links_dir = self.root / "l"
        self.meta_dir = self.root / "meta"
        self.image_meta_dir = self.meta_dir / "images"
        self.leases_dir = self.root / "leases"
        self.locks_dir = self.root / "locks"
        self.tmp_dir = self.root / "tmp"
        self._init_dirs()
        #: Held exclusively for every read-modify-write of index.json and metadata.
        self.index_lock = fsutil.FileLock(self.locks_dir / "store.lock")
        #: Held shared by writers, exclusively by garbage collection.
        self.gc_lock = fsutil.FileLock(self.locks_dir / "gc.lock")
        self.recover()

    # -- set-up and recovery ---------------------------------------------------

    def _init_dirs(self) -> None:
        for d in (self.blobs_dir, self.ingest_dir, self.layers_dir, self.links_dir,
                  self.image_meta_dir, self.leases_dir, self.locks_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)
        layout = self.oci / "oci-layout"
        if not layout.exists():
            fsutil.atomic_write(layout, json.dumps({"imageLayoutVersion": OCI_LAYOUT_VERSION}).encode())
        if not (self.oci / "index.json").exists() and not (self.meta_dir / "index.json.bak").exists():
            self._write_index({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})

    def recover(self) -> None:
        """Remove what killed writers left: ingest files, temp files, incomplete layers.

        Only files whose flock can be taken are stale; a live writer holds its lock.
        """
        for entry in os.scandir(self.ingest_dir):
            if entry.name.startswith(".new-"):
                # A writer between create and lock, or one killed right there: only
                # remove it when old enough that no live writer can still be in that gap.
                with contextlib.suppress(FileNotFoundError):
                    if time.time() - entry.stat().st_mtime > 3600:
                        os.unlink(entry.path)
                continue
            fd = fsutil.try_lock_exclusive(Path(entry.path))
            if fd is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                os.close(fd)
        for entry in os.scandir(self.layers_dir):
            if ".incomplete" in entry.name:
                lock = self.locks_dir / f"layer-{entry.name.split('.')[0]}.lock"
                fd = fsutil.try_lock_exclusive(lock)
                if fd is not None:
                    try:
                        if os.path.lexists(entry.path):
                            remove_tree(Path(entry.path))
                    finally:
                        os.close(fd)
        for entry in os.scandir(self.tmp_dir):
            if entry.name.endswith(".lock"):
                fd = fsutil.try_lock_exclusive(Path(entry.path))
                if fd is not None:
                    try:
                        stale = Path(entry.path[: -len(".lock")])
                        unmount_below(stale)   # a killed build step may have left its overlay mounted
                        remove_tree(stale)
                        os.unlink(entry.path)
                    finally:
                        os.close(fd)
        for entry in os.scandir(self.links_dir):
            # A link is made after its layer is renamed into place and removed before
            # the layer is, so one that points nowhere is always stale.
            if entry.is_symlink() and not os.path.exists(entry.path):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
        with contextlib.suppress(OSError):
            fd = fsutil.try_lock_exclusive(self.locks_dir / "store.lock")
            if fd is not None:
                try:
                    for d in (self.oci, self.meta_dir, self.image_meta_dir, self.leases_dir):
                        fsutil.remove_stale_tmp(d)
                finally:
                    os.close(fd)

    @contextlib.contextmanager
    def scratch(self, prefix: str) -> Iterator[Path]:
        """A temporary directory on the store's file system, removed afterwards.

        Its lock file stays flock'ed while in use, so ``recover`` removes the
        directory of a killed process and never that of a live one.
        """
        # The lock file comes first (O_EXCL, locked before the directory exists), so
        # recovery never finds a directory whose owner has not locked it yet.
        while True:
            path = self.tmp_dir / f"{prefix}{fsutil.random_hex(8)}"
            lock = path.with_name(path.name + ".lock")
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                break
            except FileExistsError:
                continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            path.mkdir(mode=0o700)
            yield path
        finally:
            remove_tree(path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)
            os.close(fd)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold off garbage collection while a multi-step write (load, import, pull) runs."""
        with self.gc_lock.hold(shared=True):
            yield

    # -- blobs -----------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        return self.blobs_dir / check_digest(digest).split(":", 1)[1]

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def blob_size(self, digest: str) -> int:
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(f"blob {digest} is missing from {self.blobs_dir}",
                               hint="remove the image with 'sandbox rmi -f' and pull, load or build it again") from None

    def ingest(self) -> BlobWriter:
        return BlobWriter(self)

    def put_blob(self, data: bytes, expected: str | None = None) -> str:
        """Store ``data``; return its digest.  Writing an existing blob again is a no-op."""
        digest = sha256_digest(data)
        if expected is not None and digest != expected:
            raise BlobCorrupt(expected, actual=digest)
        if self.has_blob(digest):
            return digest
        with self.ingest() as w:
            w.write(data)
            return w.commit(digest)

    def put_stream(self, stream: IO[bytes], expected: str | None = None) -> tuple[str, int]:
        with self.ingest() as w:
            while chunk := stream.read(CHUNK):
                w.write(chunk)
            return w.commit(expected), w.size

    def open_blob(self, digest: str, what: str = "blob") -> VerifyingReader:
        try:
            return VerifyingReader(self.blob_path(digest), digest, what)
        except FileNotFoundError:
            raise self._missing(digest, what) from None

    def _missing(self, digest: str, what: str) -> BlobNotFound:
        return BlobNotFound(f"{what} {digest} is missing from {self.blobs_dir}",
                            hint="remove the image with 'sandbox rmi -f' and pull, load or build it again")

    def read_blob(self, digest: str, what: str = "blob") -> bytes:
        """The whole blob, verified (a manifest or config: small, so hashed by ``sha256_digest``)."""
        try:
            data = self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise self._missing(digest, what) from None
        actual = sha256_digest(data)
        if actual != digest:
            raise BlobCorrupt(digest, what, actual=actual)
        return data

    def read_json_blob(self, digest: str, what: str = "blob") -> dict[str, Any]:
        data = self.read_blob(digest, what)
        try:
            obj = json.loads(data)
        except ValueError as e:
            raise StoreCorrupt(f"{what} {digest} is not valid JSON: {e}") from None
        if not isinstance(obj, dict):
            raise StoreCorrupt(f"{what} {digest} is not a JSON object")
        return obj

    def verify_blob(self, digest: str) -> None:
        with self.open_blob(digest) as r:
            while r.read(CHUNK):
                pass

    def all_blobs(self) -> list[str]:
        return sorted("sha256:" + e.name for e in os.scandir(self.blobs_dir)
                      if len(e.name) == 64 and not e.name.startswith("."))

    def delete_blob(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.blob_path(digest))

    # -- index.json ------------------------------------------------------------

    def _write_index(self, index: dict[str, Any]) -> None:
        data = json.dumps(index, indent=2, sort_keys=True).encode() + b"\n"
        fsutil.atomic_write(self.oci / "index.json", data)
        fsutil.atomic_write(self.meta_dir / "index.json.bak", data)

    def read_index(self) -> dict[str, Any]:
        path = self.oci / "index.json"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise StoreCorrupt(f"the store index {path} is missing",
                               hint="run 'sandbox image prune' to rebuild it from its backup") from None
        try:
            index = json.loads(data)
            if not isinstance(index, dict) or not isinstance(index.get("manifests", []), list):
                raise ValueError("not an OCI image index")
        except ValueError as e:
            raise StoreCorrupt(f"the store index {path} is damaged ({e})",
                               hint="run 'sandbox image prune' to rebuild it from its backup") from None
        return index

    def repair_index(self) -> bool:
        """Rebuild a missing or damaged index.json from its backup.  Returns True if it did."""
        with self.index_lock.hold():
            try:
                self.read_index()
                return False
            except StoreCorrupt:
                pass
            try:
                backup = json.loads((self.meta_dir / "index.json.bak").read_bytes())
                manifests = [m for m in backup.get("manifests", [])
                             if isinstance(m, dict) and self._blob_ok(m.get("digest"))]
            except (OSError, ValueError):
                manifests = []
            self._write_index({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
            return True

    def _blob_ok(self, digest: Any) -> bool:
        try:
            return self.has_blob(digest)
        except Exception:
            return False

    def manifests(self) -> list[Descriptor]:
        """Every manifest descriptor in index.json (tagged ones carry REF_NAME)."""
        return [Descriptor.from_json(m) for m in self.read_index().get("manifests", [])]

    def update_index(self, change: IndexChange) -> list[Descriptor]:
        """Apply ``change`` (a function of the manifest list) atomically, under the store lock.

        Returns the manifest list as it now is.  A change that changes nothing
        writes nothing (re-tagging an image with the name it has, as every full
        cache hit of ``build -t`` does): the index and its backup stay as they are.
        """
        with self.index_lock.hold():
            index = self.read_index()
            before = index.get("manifests", [])
            manifests = change([Descriptor.from_json(m) for m in before])
            after = [m.to_json() for m in manifests]
            if after == before and "schemaVersion" in index and "mediaType" in index:
                return manifests
            index["manifests"] = after
            index.setdefault("schemaVersion", 2)
            index.setdefault("mediaType", OCI_INDEX)
            self._write_index(index)
            return manifests

    def set_ref(self, name: str, full_name: str, manifest: Descriptor) -> str | None:
        """Point ``name`` at ``manifest``; return the manifest digest it pointed at before.

        An untagged entry for the same manifest is dropped: the image is now named.
        The image that loses the name stays, as ``<none>:<none>``, in the same index
        write, so no collection and no crash can come between the two.
        """
        return self.set_refs([(name, full_name)], manifest)[0][name]

    def set_refs(self, names: list[tuple[str, str]], manifest: Descriptor
                 ) -> tuple[dict[str, str | None], list[Descriptor]]:
        """Point every ``(name, full_name)`` at ``manifest`` in one index write (``build -t a -t b``).

        Returns the manifest digest each name pointed at before (None: a new
        name) and the manifest list written.  As :meth:`set_ref` for each name.
        """
        names = list(dict.fromkeys(names))     # ``-t a -t a`` is one name
        previous: dict[str, str | None] = {name: None for name, _ in names}

        def change(ms: list[Descriptor]) -> list[Descriptor]:
            for name, full_name in names:
                out, old = [], None
                for m in ms:
                    if m.annotations.get(REF_NAME) == name:
                        previous[name], old = m.digest, m
                        continue
                    if m.digest == manifest.digest and REF_NAME not in m.annotations:
                        continue
                    out.append(m)
                out.append(Descriptor(manifest.media_type, manifest.digest, manifest.size,
                                      {REF_NAME: name, FULL_NAME: full_name}, manifest.platform))
                if old is not None and not any(m.digest == old.digest for m in out):
                    out.append(Descriptor(old.media_type, old.digest, old.size, {}, old.platform))
                ms = sorted(out, key=_index_order)
            return ms

        return previous, self.update_index(change)

    def add_untagged(self, manifest: Descriptor) -> list[Descriptor]:
        """Record an image without a name (docker's ``<none>:<none>``), unless it has one.

        Returns the manifest list as it now is.
        """
        def change(ms: list[Descriptor]) -> list[Descriptor]:
            if any(m.digest == manifest.digest for m in ms):
                return ms
            bare = Descriptor(manifest.media_type, manifest.digest, manifest.size, {}, manifest.platform)
            return sorted(ms + [bare], key=_index_order)
        return self.update_index(change)

    # -- per-image metadata ----------------------------------------------------

    def image_meta_path(self, image_id: str) -> Path:
        return self.image_meta_dir / (check_digest(image_id).split(":", 1)[1] + ".json")

    def read_image_meta(self, image_id: str) -> dict[str, Any]:
        try:
            return json.loads(self.image_meta_path(image_id).read_bytes())
        except (FileNotFoundError, ValueError):
            return {}

    def update_image_meta(self, image_id: str, **fields: Any) -> dict[str, Any]:
        with self.index_lock.hold():
            meta = self.read_image_meta(image_id)
            for key, value in fields.items():
                if key == "repo_digests":
                    merged = list(dict.fromkeys(list(meta.get(key, [])) + list(value)))
                    meta[key] = sorted(merged)
                else:
                    meta[key] = value
            fsutil.atomic_write_json(self.image_meta_path(image_id), meta)
            return meta

    def delete_image_meta(self, image_id: str) -> None:
        with self.index_lock.hold(), contextlib.suppress(FileNotFoundError):
            os.unlink(self.image_meta_path(image_id))

    # -- leases: who still uses what -------------------------------------------

    def lease(self, holder: str, *, images: list[str] = (), blobs: list[str] = (),  # type: ignore[assignment]
              layers: list[str] = (), durable: bool = True) -> None:  # type: ignore[assignment]
        """Record that ``holder`` (``container-<id>``, ``cache-<key>``, ...) uses these objects.

        Garbage collection keeps everything a lease names.  Image ids keep the
        image's manifest, config and layers; layer entries are chain ids.  A
        holder that cannot outlive a crash of the machine (a ``--rm``
        container) needs no fsync: after one, it is gone anyway.
        """
        _check_holder(holder)
        with self.index_lock.hold():
            fsutil.atomic_write_json(self.leases_dir / f"{holder}.json", {
                "holder": holder, "images": sorted(images), "blobs": sorted(blobs),
                "layers": sorted(layers), "created": time.time()}, durable=durable)

    def release(self, holder: str) -> None:
        _check_holder(holder)
        with self.index_lock.hold(), contextlib.suppress(FileNotFoundError):
            os.unlink(self.leases_dir / f"{holder}.json")

    def leases(self) -> list[dict[str, Any]]:
        out = []
        for entry in sorted(os.scandir(self.leases_dir), key=lambda e: e.name):
            if entry.name.endswith(".json") and not entry.name.startswith("."):
                try:
                    out.append(json.loads(Path(entry.path).read_bytes()))
                except (OSError, ValueError):
                    continue
        return out


if TYPE_CHECKING:
    IndexChange = Any  # Callable[[list[Descriptor]], list[Descriptor]]


def _index_order(d: Descriptor) -> tuple[str, str]:
    """index.json lists tagged images by name, then untagged ones by digest: stable diffs."""
    name = d.annotations.get(REF_NAME)
    return ("0" + name, d.digest) if name else ("1", d.digest)


def _check_holder(holder: str) -> None:
    if not holder or "/" in holder or holder.startswith("."):
        raise ValueError(f"invalid lease holder {holder!r}")


def unmount_below(path: Path) -> None:
    """Detach every mount at or below ``path`` (deepest first) so it can be removed.

    Without this a directory left by a killed process could hold an overlay
    mount, and removing the directory would delete files *through* it.
    """
    if not os.path.isdir(path):
        return
    from ..cgroups.fs import read_mountinfo
    from .. import kernel
    root = Path(os.path.realpath(path))
    try:
        mounts = [m.mount_point for m in read_mountinfo() if m.below(root)]
    except OSError:
        return
    for point in sorted(mounts, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(SandboxError, OSError):
            kernel.umount(point, kernel.MNT_DETACH)


def remove_tree(path: Path) -> None:
    """Remove a directory tree, including entries made read-only or immutable-looking by a layer."""
    def onerror(func: Any, p: str, exc_info: Any) -> None:
        err = exc_info[1]
        if isinstance(err, FileNotFoundError):
            return
        if isinstance(err, PermissionError) or getattr(err, "errno", None) == errno.EACCES:
            with contextlib.suppress(OSError):
                os.chmod(os.path.dirname(p), 0o700)
            func(p)
            return
        raise err
    if path.is_symlink() or not path.is_dir():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    import shutil  # here: shutil brings bz2 and lzma, and a cold command rarely removes a tree
    shutil.rmtree(path, onerror=onerror)
