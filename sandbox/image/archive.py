"""Moving images in and out of the store as tar archives: ``save``, ``load`` and ``import``.

Three formats meet here:

* **docker-archive**, what ``docker save`` writes and ``docker load`` reads: a
  ``manifest.json`` listing each image's config file, layer files and
  ``RepoTags``.  Docker before v25 put layers in ``<v1-id>/layer.tar`` and the
  config in ``<id>.json``; skopeo writes ``<hex>.tar`` and ``<hex>.json``;
  Docker v25+ writes an OCI layout (``blobs/sha256/...``) and ``manifest.json``
  side by side, and so do we, so old and new ``docker load`` both read it.
* **OCI archive**, an OCI image layout in a tar (``oci-layout``, ``index.json``,
  ``blobs/``), what skopeo calls ``oci-archive:``.  Tags travel in the
  ``org.opencontainers.image.ref.name`` annotation (``busybox:latest``, or a
  bare ``latest`` next to containerd's ``io.containerd.image.name``).
* **a root filesystem tarball**, which ``import`` turns into a one-layer image.

Guarantees: ``save`` streams (no seeking on its output) and writes the same bytes
for the same images; ``load`` verifies every blob against its digest and every
layer against the config's ``diff_ids`` before it names a single image, so a
damaged archive leaves no tag behind; ``import`` re-tars the input through
:mod:`tarlayer`, so the same tree gives the same diff_id and, under
``SOURCE_DATE_EPOCH``, the same image id on every machine.
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import io
import json
import lzma
import os
import posixpath
import re
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, Callable, Iterable, Iterator

from .. import reference as _ref
from ..errors import (ArchiveError, BlobCorrupt, InvalidReference, LayerError, SandboxError,
                      StoreFull, UnsafeLayerEntry)
from . import fsutil, tarlayer
from .images import Image, ImageStore, host_platform, new_config, now_rfc3339
from .layers import LayerBlob, check_diff_id, write_layer_blob
from .mediatypes import (DOCKER_LAYER, DOCKER_LAYER_FOREIGN, DOCKER_LAYER_GZIP,
                         FULL_NAME, INDEXES, LAYERS, MANIFESTS, OCI_CONFIG, OCI_INDEX,
                         OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_LAYOUT_VERSION,
                         OCI_MANIFEST, REF_NAME, sha256_digest)
from .store import CHUNK, Store

__all__ = ["save", "load", "describe_loaded", "import_rootfs", "apply_changes", "VALID_CHANGES"]

Progress = Callable[[str], None]

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_BZIP2_MAGIC = b"BZh"
_XZ_MAGIC = b"\xfd7zXZ\x00"

#: Manifests, indexes and configs are small; refuse to read a "config" of gigabytes into memory.
_MAX_JSON = 64 << 20

_LOAD_HINT = "to turn a root filesystem tarball into an image use 'sandbox import'"
_IMPORT_HINT = ("import expects a root filesystem tarball (plain, gzip or zstd); "
                "to load an image archive made by save, use 'sandbox load'")

#: Docker's media types mapped to OCI's, for manifests written into an OCI archive.
_TO_OCI_LAYER = {DOCKER_LAYER: OCI_LAYER, DOCKER_LAYER_GZIP: OCI_LAYER_GZIP,
                 DOCKER_LAYER_FOREIGN: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"}


# ==============================================================================
# save
# ==============================================================================

@dataclass
class _SavedImage:
    image: Image
    tags: list[str] = field(default_factory=list)


def save(images: ImageStore, names: list[str], out: BinaryIO, *, format: str = "docker") -> None:
    """Write the images called ``names`` to ``out`` as one tar archive.

    ``format="docker"``: a docker-archive that ``docker load`` (old and new) and
    skopeo's ``docker-archive:`` read: ``manifest.json`` + ``repositories`` + an
    OCI layout.  ``format="oci"``: an OCI image layout tar (skopeo's
    ``oci-archive:``) whose ref names are the familiar names.

    Layer blobs are copied as stored (usually gzip); every blob is verified as it
    is copied.  Nothing is written before every name resolved and every blob
    was found.  The output is deterministic: sorted entries, mtime 0, owner 0:0.
    """
    if format not in ("docker", "oci"):
        raise SandboxError(f"unknown archive format {format!r}", hint="choose 'docker' or 'oci'")
    if not names:
        raise SandboxError("save needs at least one image name", hint="e.g. 'sandbox save -o busybox.tar busybox'")
    store = images.store
    with store.transaction():  # an image removed while we stream it keeps its blobs until we are done
        _save(images, _resolve(images, names), out, format)


def _save(images: ImageStore, saved: list[_SavedImage], out: BinaryIO, format: str) -> None:
    store = images.store
    files: dict[str, bytes] = {}
    blobs: dict[str, int] = {}  # digest -> size, in the store
    index_entries: list[dict[str, Any]] = []
    docker_manifest: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    for item in saved:
        manifest_bytes, manifest = _oci_manifest(store, item.image)
        manifest_digest = sha256_digest(manifest_bytes)
        files[_blob_name(manifest_digest)] = manifest_bytes
        config_digest = manifest["config"]["digest"]
        layer_digests = [l["digest"] for l in manifest["layers"]]
        for digest in [config_digest] + layer_digests:
            blobs[digest] = store.blob_size(digest)  # BlobNotFound before a byte is written
        desc = {"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": len(manifest_bytes)}
        for tag in item.tags:
            ref = _ref.parse(tag)
            ref_name = ref.familiar if format == "oci" else str(ref.tag)  # docker v25 writes the bare tag
            index_entries.append({**desc, "annotations": {REF_NAME: ref_name, FULL_NAME: ref.full_name}})
            # Only Docker before 1.10 reads "repositories" (when manifest.json is absent); keep it for shape.
            top = (layer_digests or [config_digest])[-1]
            repositories.setdefault(ref.familiar_name, {})[str(ref.tag)] = top.split(":", 1)[1]
        if not item.tags:
            index_entries.append(desc)
        docker_manifest.append({"Config": _blob_name(config_digest), "RepoTags": list(item.tags),
                                "Layers": [_blob_name(d) for d in layer_digests]})
    files["oci-layout"] = _json_bytes({"imageLayoutVersion": OCI_LAYOUT_VERSION})
    files["index.json"] = _json_bytes({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index_entries})
    if format == "docker":
        files["manifest.json"] = json.dumps(docker_manifest, separators=(",", ":")).encode()
        if repositories:
            files["repositories"] = _json_bytes(repositories)
    _write_tar(store, out, files, blobs)


def _resolve(images: ImageStore, names: list[str]) -> list[_SavedImage]:
    """One entry per image, in the order first named, with the tags ``names`` asked for.

    As in Docker: a name with a tag saves that tag; a repository without a tag
    saves all its tags; an id or digest saves the image untagged.
    """
    by_id: dict[str, _SavedImage] = {}
    for name in names:
        for image, tags in _select(images, name):
            item = by_id.setdefault(image.id, _SavedImage(image))
            item.tags += [t for t in tags if t not in item.tags]
    return list(by_id.values())


def _select(images: ImageStore, name: str) -> list[tuple[Image, list[str]]]:
    try:
        ref: _ref.Reference | None = _ref.parse(name, default_tag=False)
    except InvalidReference:
        ref = None
    if ref is not None and ref.tag is None and ref.digest is None:
        hits = [(i, [t]) for i in images.list() for t in i.tags
                if _ref.parse(t).familiar_name == ref.familiar_name]
        if hits:
            return sorted(hits, key=lambda hit: hit[1])
    image = images.get(name)
    by_id = _ref.is_image_id_prefix(name) and image.id.split(":", 1)[1].startswith(name.split(":", 1)[-1])
    if by_id or ref is None or ref.tag is None:
        return [(image, [])]  # found by id or digest: saved untagged, as Docker does
    return [(image, [ref.familiar])]


def _oci_manifest(store: Store, image: Image) -> tuple[bytes, dict[str, Any]]:
    """The image's manifest as OCI (a Docker schema 2 manifest is converted; its config bytes stay)."""
    if image.manifest.get("mediaType", OCI_MANIFEST) == OCI_MANIFEST:
        data = store.read_blob(image.manifest_digest, "manifest")
        return data, json.loads(data)
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {**image.manifest["config"], "mediaType": OCI_CONFIG},
        "layers": [{**l, "mediaType": _TO_OCI_LAYER.get(l["mediaType"], l["mediaType"])}
                   for l in image.manifest["layers"]],
    }
    return fsutil.canonical_json(manifest), manifest


def _blob_name(digest: str) -> str:
    return "blobs/" + digest.replace(":", "/", 1)


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _write_tar(store: Store, out: BinaryIO, files: dict[str, bytes], blobs: dict[str, int]) -> None:
    entries: dict[str, Any] = {"blobs": None, "blobs/sha256": None, **files}
    entries.update({_blob_name(d): d for d in blobs})
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for name in sorted(entries):
            source = entries[name]
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if source is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(info)
            elif isinstance(source, bytes):
                info.mode, info.size = 0o644, len(source)
                tf.addfile(info, io.BytesIO(source))
            else:
                info.mode, info.size = 0o644, blobs[source]
                with store.open_blob(source, "blob") as reader:
                    tf.addfile(info, _ExactReader(reader, info.size, source))


class _ExactReader:
    """Hands tarfile exactly ``size`` bytes, then makes sure the blob has no more.

    tarfile never asks for more than the header's size; if the blob on disk has
    grown since that size was taken, the digest check (which fires at the file's
    real end) would never run, so a longer blob is refused here.
    """

    def __init__(self, reader: Any, size: int, digest: str) -> None:
        self._reader, self._left, self._digest = reader, size, digest

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        data = self._reader.read(n) if n else b""
        self._left -= len(data)
        if self._left == 0 and self._reader.read(1):
            raise BlobCorrupt(self._digest, "blob", hint="the blob grew while it was saved; save again")
        return data


# ==============================================================================
# load
# ==============================================================================

@dataclass
class _LoadPlan:
    """One image of an archive, its blobs stored and verified, not yet named."""

    config_digest: str
    layers: list[LayerBlob]
    tags: list[str]


def load(images: ImageStore, stream: BinaryIO, *, quiet: bool = False, progress: Progress | None = None,
         source_name: str | None = None) -> list[Image]:
    """``docker load``: read a docker-archive or OCI archive (plain, gzip, zstd, bzip2 or xz).

    Every blob is copied into the store and verified (digest, and diff_id for
    layers) for every image of the archive before any image is named, all under
    the store's transaction so garbage collection leaves the new blobs alone.  On
    failure nothing is tagged; blobs already written are left for GC.
    ``progress`` (unless ``quiet``) is called with one line per layer loaded.
    """
    source = source_name or _stream_name(stream)
    report = (lambda line: None) if quiet or progress is None else progress
    store = images.store
    with store.transaction(), _open_archive(stream, store, source) as archive:
        if archive.has("manifest.json"):
            plans = _load_docker(archive, store, report)
        elif archive.has("index.json"):
            plans = _load_oci(archive, store, report)
        else:
            raise ArchiveError(f"{source} is not an image archive: no manifest.json or index.json found",
                               hint=_LOAD_HINT)
        plans = _merge_plans(plans)
        # Unpack everything first: a layer the unpacker refuses must not leave half the archive tagged.
        sizes = [images.unpack([l.diff_id for l in p.layers], [l.digest for l in p.layers]) for p in plans]
        return [images.add_manifest(_manifest_for(store, p), tags=p.tags, size=size)
                for p, size in zip(plans, sizes)]


def describe_loaded(loaded: Iterable[Image]) -> list[str]:
    """Docker's report of a load: ``Loaded image: busybox:latest`` or ``Loaded image ID: sha256:...``."""
    lines: list[str] = []
    for image in loaded:
        lines += [f"Loaded image: {t}" for t in image.tags] or [f"Loaded image ID: {image.id}"]
    return lines


def _stream_name(stream: Any) -> str:
    name = getattr(stream, "name", None)
    return name if isinstance(name, str) and not name.startswith("<") else "the input"


def _merge_plans(plans: list[_LoadPlan]) -> list[_LoadPlan]:
    """Two entries for one image (one per tag) become one image with both tags."""
    merged: dict[str, _LoadPlan] = {}
    for plan in plans:
        seen = merged.setdefault(plan.config_digest, _LoadPlan(plan.config_digest, plan.layers, []))
        seen.tags += [t for t in plan.tags if t not in seen.tags]
    return list(merged.values())


def _manifest_for(store: Store, plan: _LoadPlan) -> dict[str, Any]:
    return {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": plan.config_digest,
                   "size": store.blob_size(plan.config_digest)},
        "layers": [{"mediaType": l.media_type, "digest": l.digest, "size": l.size} for l in plan.layers],
    }


# -- reading the archive -------------------------------------------------------

class _Archive:
    """Random access to the members of a (seekable, uncompressed) tar, by normalised name."""

    def __init__(self, tf: tarfile.TarFile, source: str) -> None:
        self.tf = tf
        self.source = source
        self.members: dict[str, tarfile.TarInfo] = {}
        for member in tf.getmembers():
            if member.isfile() or member.issym() or member.islnk():
                self.members[_normalise(member.name)] = member

    def has(self, name: str) -> bool:
        return name in self.members

    def open(self, name: str) -> tuple[IO[bytes], int]:
        """The member's content and size; symlinks (old docker save dedups layers so) are followed."""
        member = self.members.get(name)
        for _ in range(16):
            if member is None or member.isfile():
                break
            target = member.linkname if member.islnk() else posixpath.join(posixpath.dirname(name), member.linkname)
            name = _normalise(target)
            member = self.members.get(name)
        if member is None or not member.isfile():
            raise ArchiveError(f"{self.source} is incomplete: member {name} is missing",
                               hint="the archive was cut short or edited; save it again")
        f = self.tf.extractfile(member)
        assert f is not None
        return f, member.size

    def read(self, name: str, what: str) -> bytes:
        f, size = self.open(name)
        if size > _MAX_JSON:
            raise ArchiveError(f"{self.source}: {what} {name} is {size} bytes, too large to be one",
                               hint="the archive is damaged or not an image archive")
        return f.read()

    def read_json(self, name: str, what: str) -> Any:
        try:
            return json.loads(self.read(name, what))
        except ValueError as e:
            raise ArchiveError(f"{self.source}: {what} {name} is not valid JSON ({e})",
                               hint="the archive is damaged; save it again") from None


def _normalise(name: str) -> str:
    name = posixpath.normpath("/" + name).lstrip("/")
    return name


@contextlib.contextmanager
def _open_archive(stream: BinaryIO, store: Store, source: str) -> Iterator[_Archive]:
    """Open the archive for random access, spooling (and decompressing) it into the store's tmp dir if needed.

    The spool file is unnamed (``TemporaryFile``), so nothing is left behind even if we are killed.
    """
    seekable = _seekable(stream)
    start = stream.tell() if seekable else 0
    head = _read_full(stream, 6)
    compressed = _compression(head)
    with contextlib.ExitStack() as stack:
        if compressed is None and seekable:
            stream.seek(start)
            tar_file: IO[bytes] = stream
        else:
            tar_file = stack.enter_context(tempfile.TemporaryFile(dir=store.tmp_dir, prefix="load-"))
            _spool(_Prefixed(head, stream), tar_file, compressed, source)
            tar_file.seek(0)
        try:
            tf = stack.enter_context(tarfile.open(fileobj=tar_file, mode="r:"))
            archive = _Archive(tf, source)
        except (tarfile.TarError, EOFError, OSError) as e:
            what = "it is empty" if not head else f"it is not a tar file ({e})"
            raise ArchiveError(f"{source} is not an image archive: {what}", hint=_LOAD_HINT) from None
        yield archive


def _seekable(stream: Any) -> bool:
    try:
        return bool(stream.seekable()) and isinstance(stream.tell(), int)
    except (AttributeError, OSError, ValueError):
        return False


def _read_full(stream: Any, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _compression(head: bytes) -> str | None:
    for name, magic in (("gzip", _GZIP_MAGIC), ("zstd", _ZSTD_MAGIC), ("bzip2", _BZIP2_MAGIC), ("xz", _XZ_MAGIC)):
        if head.startswith(magic):
            return name
    return None


class _Prefixed(io.RawIOBase):
    """A read-only stream: ``head`` (bytes already read to sniff the format), then the rest of ``stream``."""

    def __init__(self, head: bytes, stream: Any) -> None:
        self._head, self._stream = head, stream

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        if self._head:
            n = min(len(buf), len(self._head))
            buf[:n], self._head = self._head[:n], self._head[n:]
            return n
        data = self._stream.read(len(buf))
        buf[:len(data)] = data
        return len(data)


def _spool(src: _Prefixed, dst: IO[bytes], compressed: str | None, source: str) -> None:
    reader: Any = io.BufferedReader(src, CHUNK)
    if compressed == "gzip":
        reader = gzip.GzipFile(fileobj=reader, mode="rb")
    elif compressed == "bzip2":
        reader = bz2.BZ2File(reader)
    elif compressed == "xz":
        reader = lzma.LZMAFile(reader)
    elif compressed == "zstd":
        reader = tarlayer.open_layer(reader)
    try:
        while chunk := reader.read(CHUNK):
            try:
                dst.write(chunk)
            except OSError as e:
                if e.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise StoreFull(f"a spooled copy of {source}", str(Path(dst.name).parent)
                                    if isinstance(getattr(dst, "name", None), str) else "the store") from None
                raise
    except (OSError, EOFError, zlib.error, lzma.LZMAError, LayerError) as e:
        raise ArchiveError(f"{source} is not a valid {compressed} stream: {_cause(e)}",
                           hint="the download or copy was probably cut short; fetch it again") from None


# -- docker-archive -----------------------------------------------------------

def _load_docker(archive: _Archive, store: Store, report: Progress) -> list[_LoadPlan]:
    entries = archive.read_json("manifest.json", "manifest")
    if not isinstance(entries, list):
        raise ArchiveError(f"{archive.source}: manifest.json is not a list of images",
                           hint="the archive is damaged; save it again")
    done: dict[str, LayerBlob] = {}
    plans = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) \
                or not isinstance(entry.get("Layers"), list):
            raise ArchiveError(f"{archive.source}: manifest.json entry {entry!r} lacks Config or Layers",
                               hint="the archive is damaged; save it again")
        tags = [_familiar_tag(t, archive.source) for t in entry.get("RepoTags") or []]
        config_name = _normalise(entry["Config"])
        config_digest, config = _store_config(archive, store, config_name, _digest_in_name(config_name))
        diff_ids = _diff_ids(config, config_name, len(entry["Layers"]), archive.source)
        layers = []
        for raw_name, diff_id in zip(entry["Layers"], diff_ids):
            name = _normalise(str(raw_name))
            if name not in done:
                done[name] = _store_layer(archive, store, name, _digest_in_name(name), None, diff_id, report)
            elif done[name].diff_id != diff_id:
                raise ArchiveError(f"{archive.source}: layer {name} is listed with two different diff_ids",
                                   hint="the archive is damaged; save it again")
            layers.append(done[name])
        plans.append(_LoadPlan(config_digest, layers, tags))
    return plans


def _digest_in_name(name: str) -> str | None:
    """The digest a member's name promises: ``blobs/sha256/<hex>`` (and skopeo's/old docker's ``<hex>.json``)."""
    m = re.fullmatch(r"blobs/sha256/([a-f0-9]{64})|([a-f0-9]{64})\.json", name)
    return "sha256:" + (m.group(1) or m.group(2)) if m else None


def _store_config(archive: _Archive, store: Store, name: str, expected: str | None) -> tuple[str, dict[str, Any]]:
    """Store the config bytes exactly as they are: their digest is the image id."""
    data = archive.read(name, "image config")
    digest = sha256_digest(data)
    if expected and digest != expected:
        raise BlobCorrupt(expected, f"image config {name} of {archive.source}, digest", actual=digest,
                          hint="the archive is damaged; save or download it again")
    config = _json_object(data, archive.source, f"image config {name}")
    store.put_blob(data, digest)
    return digest, config


def _json_object(data: bytes, source: str, what: str) -> dict[str, Any]:
    """``data`` parsed as a JSON object, or an ArchiveError naming the member."""
    try:
        obj = json.loads(data)
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
    except ValueError as e:
        raise ArchiveError(f"{source}: {what} is not valid JSON ({e})",
                           hint="the archive is damaged; save it again") from None
    return obj


def _diff_ids(config: dict[str, Any], name: str, count: int, source: str) -> list[str]:
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    if len(diff_ids) != count or not all(isinstance(d, str) for d in diff_ids):
        raise ArchiveError(f"{source}: image config {name} lists {len(diff_ids)} layers "
                           f"but the archive gives {count}", hint="the archive is damaged; save it again")
    return list(diff_ids)


def _store_layer(archive: _Archive, store: Store, name: str, expected: str | None, size: int | None,
                 diff_id: str, report: Progress) -> LayerBlob:
    """Copy one layer into the store, check its digest and its diff_id; return it as the manifest sees it."""
    what = f"layer {name} of {archive.source}, digest"
    hint = "the archive is damaged; save or download it again"
    f, member_size = archive.open(name)
    if size is not None and member_size != size:
        raise ArchiveError(f"{archive.source}: layer {name} is {member_size} bytes, its descriptor says {size}",
                           hint=hint)
    try:
        digest, stored = store.put_stream(f, expected)  # type: ignore[arg-type]
    except BlobCorrupt as e:
        raise BlobCorrupt(e.digest, what, actual=e.actual, hint=hint) from None
    media_type = _layer_media_type(store, digest, name, archive.source)
    if not (media_type == OCI_LAYER and digest == diff_id):  # an uncompressed blob's digest is its diff_id
        try:
            check_diff_id(store, digest, diff_id)
        except BlobCorrupt as e:
            raise BlobCorrupt(diff_id, f"layer {name} of {archive.source}, diff_id", actual=e.actual,
                              hint=hint) from None
        except (OSError, EOFError, zlib.error, LayerError) as e:
            raise ArchiveError(f"{archive.source}: layer {name} cannot be read ({_cause(e)})", hint=hint) from None
    report(f"Loaded layer {diff_id[7:19]} ({_human(stored)})")
    return LayerBlob(diff_id, digest, stored, media_type)


def _layer_media_type(store: Store, digest: str, name: str, source: str) -> str:
    with open(store.blob_path(digest), "rb") as f:
        head = f.read(6)
    kind = _compression(head)
    if kind in ("bzip2", "xz"):
        raise ArchiveError(f"{source}: layer {name} is {kind}-compressed, which OCI images cannot carry",
                           hint="re-save the image with plain or gzip layers")
    return {"gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}.get(kind or "", OCI_LAYER)


def _familiar_tag(name: str, source: str) -> str:
    try:
        ref = _ref.parse(name)
    except InvalidReference as e:
        raise ArchiveError(f"{source}: image name {name!r} is not valid ({e})",
                           hint="fix the name in the archive, or load it and tag it by id") from None
    if ref.tag is None:
        raise ArchiveError(f"{source}: image name {name!r} has a digest but no tag",
                           hint="an archive names images by tag, e.g. 'busybox:latest'")
    return ref.familiar


def _cause(e: BaseException) -> str:
    """The bare reason of ``e``: a SandboxError without its hint or its "layer is not..." lead-in."""
    text = str(e.args[0]) if isinstance(e, SandboxError) and e.args else str(e)
    return text.removeprefix("layer is not a valid tar archive: ")


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.3g}{unit}"
        value /= 1000
    return f"{size}B"


# -- OCI archive ---------------------------------------------------------------

def _load_oci(archive: _Archive, store: Store, report: Progress) -> list[_LoadPlan]:
    index = archive.read_json("index.json", "image index")
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise ArchiveError(f"{archive.source}: index.json is not an OCI image index",
                           hint="the archive is damaged; save it again")
    done: dict[str, LayerBlob] = {}
    plans = []
    for desc in index["manifests"]:
        desc = _check_descriptor(desc, "index.json", archive.source)
        if (desc.get("platform") or {}).get("os") == "unknown":
            continue  # buildkit's attestation manifests are not images
        tags = _oci_tags(desc.get("annotations") or {}, archive.source)
        manifest_desc = _pick_manifest(archive, desc)
        manifest = _read_blob_json(archive, store, manifest_desc, "manifest")
        config_desc = _check_descriptor(manifest.get("config"), _blob_name(manifest_desc["digest"]), archive.source)
        config_name = _blob_name(config_desc["digest"])
        config_digest, config = _store_config(archive, store, config_name, config_desc["digest"])
        layer_descs = [_check_descriptor(l, config_name, archive.source) for l in manifest.get("layers") or []]
        diff_ids = _diff_ids(config, config_name, len(layer_descs), archive.source)
        layers = []
        for ldesc, diff_id in zip(layer_descs, diff_ids):
            if ldesc["mediaType"] not in LAYERS:
                raise ArchiveError(f"{archive.source}: layer {ldesc['digest']} has unknown media type "
                                   f"{ldesc['mediaType']!r}", hint="only OCI and Docker layer tars can be loaded")
            if ldesc["digest"] not in done:
                done[ldesc["digest"]] = _store_layer(archive, store, _blob_name(ldesc["digest"]), ldesc["digest"],
                                                     ldesc["size"], diff_id, report)
            layers.append(done[ldesc["digest"]])
        plans.append(_LoadPlan(config_digest, layers, tags))
    return plans


def _check_descriptor(desc: Any, where: str, source: str) -> dict[str, Any]:
    if not isinstance(desc, dict) or not isinstance(desc.get("mediaType"), str) \
            or not re.fullmatch(r"sha256:[a-f0-9]{64}", str(desc.get("digest"))) \
            or not isinstance(desc.get("size"), int):
        raise ArchiveError(f"{source}: {where} has a malformed descriptor {desc!r}",
                           hint="the archive is damaged, or uses a digest other than sha256")
    return desc


def _oci_tags(annotations: dict[str, Any], source: str) -> list[str]:
    """The tag an index entry names: containerd's full name, else ``ref.name`` (``busybox:latest`` or ``app``)."""
    full, ref_name = annotations.get(FULL_NAME), annotations.get(REF_NAME)
    if isinstance(full, str) and full:
        try:
            if _ref.parse(full, default_tag=False).tag is None:
                return []  # a name@digest: the image is loaded untagged, as Docker does
        except InvalidReference:
            pass  # _familiar_tag says what is wrong
        return [_familiar_tag(full, source)]
    if isinstance(ref_name, str) and ref_name:
        return [_familiar_tag(ref_name, source)]
    return []


def _pick_manifest(archive: _Archive, desc: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    """Follow (possibly nested) indexes down to the manifest for this host's platform."""
    if desc["mediaType"] in MANIFESTS:
        return desc
    if desc["mediaType"] not in INDEXES or depth > 4:
        raise ArchiveError(f"{archive.source}: {desc['digest']} has unsupported media type {desc['mediaType']!r}",
                           hint="the archive holds something other than images")
    index = _read_blob_json(archive, None, desc, "image index")
    children = [_check_descriptor(d, _blob_name(desc["digest"]), archive.source) for d in index.get("manifests") or []]
    children = [d for d in children if (d.get("platform") or {}).get("os") != "unknown"]
    os_name, arch, variant = host_platform()
    for child in children:
        p = child.get("platform")
        if p and p.get("os") == os_name and p.get("architecture") == arch \
                and (not p.get("variant") or not variant or p.get("variant") == variant):
            return _pick_manifest(archive, child, depth + 1)
    if len(children) == 1 and not children[0].get("platform"):
        return _pick_manifest(archive, children[0], depth + 1)
    have = sorted({"/".join(filter(None, [(d.get("platform") or {}).get("os"), (d.get("platform") or {}).get(
        "architecture"), (d.get("platform") or {}).get("variant")])) for d in children}) or ["none"]
    raise ArchiveError(f"{archive.source}: index {desc['digest']} has no image for {os_name}/{arch} "
                       f"(it has: {', '.join(have)})", hint="save or pull the image for this machine's platform")


def _read_blob_json(archive: _Archive, store: Store | None, desc: dict[str, Any], what: str) -> dict[str, Any]:
    name = _blob_name(desc["digest"])
    data = archive.read(name, what)
    if sha256_digest(data) != desc["digest"]:
        raise BlobCorrupt(desc["digest"], f"{what} {name} of {archive.source}, digest", actual=sha256_digest(data),
                          hint="the archive is damaged; save or download it again")
    return _json_object(data, archive.source, f"{what} {name}")


# ==============================================================================
# import
# ==============================================================================

def import_rootfs(images: ImageStore, stream: BinaryIO, *, tag: str | None = None,
                  changes: Iterable[str] = (), message: str | None = None, source_name: str = "-") -> Image:
    """``docker import``: a root filesystem tarball (plain, gzip or zstd) becomes a one-layer image.

    The tar is applied into a temp dir (which refuses entries escaping it) and
    written out again by :func:`tarlayer.write_overlay_upper`: sorted entries,
    numeric owners, mtimes clamped to ``SOURCE_DATE_EPOCH``.  So the layer
    depends on the tree, not on the order, times or umask it was made with.
    ``changes`` are Dockerfile lines (see :func:`apply_changes`); ``message``
    replaces the history comment "Imported from <source_name>", as in Docker.
    """
    if tag is not None:
        ref = _ref.parse(tag)
        if ref.tag is None:
            raise InvalidReference(f"cannot import as {tag!r}: a tag cannot contain a digest", hint="use NAME[:TAG]")
    config: dict[str, Any] = {}
    apply_changes(config, changes)  # a bad change fails before any work
    store = images.store
    with store.transaction():
        with store.scratch("import-") as work:
            root = work / "rootfs"
            root.mkdir()
            os.chmod(root, 0o755)  # not the umask's choice: "/" is part of the layer
            _apply_rootfs(stream, root, source_name)
            epoch = tarlayer.source_date_epoch()
            layer = write_layer_blob(store, lambda out: tarlayer.write_overlay_upper(root, out, epoch=epoch))
        created = now_rfc3339()
        history = [{"created": created, "comment": message or f"Imported from {source_name}"}]
        image_config = new_config([layer], history, config=config, created=created)
        return images.create(image_config, [layer], tags=[tag] if tag else [])


def _apply_rootfs(stream: BinaryIO, root: Path, source: str) -> None:
    try:
        tarlayer.apply_layer(stream, root, mode="overlay")
    except UnsafeLayerEntry:
        raise
    except (LayerError, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile) as e:
        raise ArchiveError(f"cannot import {source}: it is not a tar archive ({_cause(e)})",
                           hint=_IMPORT_HINT) from None
    if (root / "manifest.json").is_file() or (root / "oci-layout").is_file():
        raise ArchiveError(f"cannot import {source}: it is an image archive (it has "
                           f"{'manifest.json' if (root / 'manifest.json').is_file() else 'oci-layout'}), "
                           "not a root filesystem",
                           hint="to load an image archive made by save, use 'sandbox load'")


# -- changes: the Dockerfile instructions docker import/commit -c accept --------

VALID_CHANGES = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "STOPSIGNAL", "USER",
                 "VOLUME", "WORKDIR")


def apply_changes(config: dict[str, Any], changes: Iterable[str]) -> None:
    """Apply Dockerfile-like ``changes`` (``docker import -c``) to an image's ``config`` section.

    Keys use Docker's capitalisation (``Cmd``, ``Env``, ``ExposedPorts``...).
    Variables (``$VAR``, ``${VAR}``, ``${VAR:-default}``) are expanded from the
    ``Env`` set so far, as in a Dockerfile, except in CMD and ENTRYPOINT.
    """
    cmd_set = False
    for change in changes:
        line = change.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        keyword, rest = parts[0].upper(), (parts[1].strip() if len(parts) > 1 else "")
        handler = _CHANGES.get(keyword)
        if handler is None:
            raise SandboxError(f"{parts[0]} is not a valid change command: {line!r}",
                               hint="use one of " + ", ".join(VALID_CHANGES))
        if not rest:
            raise SandboxError(f"{keyword} requires at least one argument: {line!r}")
        if keyword == "ENTRYPOINT" and not cmd_set:
            config.pop("Cmd", None)  # as in a Dockerfile: a new ENTRYPOINT drops an inherited CMD
        cmd_set = cmd_set or keyword == "CMD"
        handler(config, rest, _env_map(config))


def _env_map(config: dict[str, Any]) -> dict[str, str]:
    return dict(e.split("=", 1) if "=" in e else (e, "") for e in config.get("Env") or [])


def _exec_or_shell(rest: str) -> list[str]:
    if rest.startswith("["):
        with contextlib.suppress(ValueError):
            value = json.loads(rest)
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return value
    return ["/bin/sh", "-c", rest]


def _pairs(keyword: str, rest: str, env: dict[str, str]) -> list[tuple[str, str]]:
    """``K=V K2="v 2"``, or the legacy ``K V W`` (one pair, the value is the rest of the line)."""
    first = rest.split(None, 1)[0]
    if "=" not in first:
        key, _, value = rest.partition(" ") if " " in rest else rest.partition("\t")
        if not value.strip():
            raise SandboxError(f"{keyword} {rest!r}: expected {keyword} KEY=VALUE", hint=f"e.g. {keyword} A=1 B=\"two words\"")
        return [(_words(key, env)[0], _expand(value.strip(), env))]
    out = []
    for word in _words(rest, env):
        key, eq, value = word.partition("=")
        if not eq or not key:
            raise SandboxError(f"{keyword} {rest!r}: {word!r} is not KEY=VALUE",
                               hint=f"e.g. {keyword} A=1 B=\"two words\"")
        out.append((key, value))
    return out


def _change_env(config: dict[str, Any], rest: str, env: dict[str, str]) -> None:
    current = list(config.get("Env") or [])
    for key, value in _pairs("ENV", rest, env):
        current = [e for e in current if e.split("=", 1)[0] != key] + [f"{key}={value}"]
    config["Env"] = current


def _change_label(config: dict[str, Any], rest: str, env: dict[str, str]) -> None:
    config["Labels"] = {**(config.get("Labels") or {}), **dict(_pairs("LABEL", rest, env))}


def _change_expose(config: dict[str, Any], rest: str, env: dict[str, str]) -> None:
    ports = dict(config.get("ExposedPorts") or {})
    for word in _words(rest, env):
        port, _, proto = word.partition("/")
        proto = (proto or "tcp").lower()
        low, _, high = port.partition("-")
        if proto not in ("tcp", "udp", "sctp") or not low.isdigit() or (high and not high.isdigit()) \
                or not 0 < int(low) <= int(high or low) <= 65535:
            raise SandboxError(f"EXPOSE {rest!r}: invalid port {word!r}", hint="e.g. EXPOSE 80 443/tcp 53/udp 8000-8002")
        for p in range(int(low), int(high or low) + 1):
            ports[f"{p}/{proto}"] = {}
    config["ExposedPorts"] = ports


def _change_volume(config: dict[str, Any], rest: str, env: dict[str, str]) -> None:
    paths = _exec_or_shell(rest) if rest.startswith("[") else _words(rest, env)
    if paths[:2] == ["/bin/sh", "-c"] or not all(p.strip() for p in paths):
        raise SandboxError(f"VOLUME {rest!r}: expected paths", hint='e.g. VOLUME /data or VOLUME ["/data"]')
    config["Volumes"] = {**(config.get("Volumes") or {}), **{p: {} for p in paths}}


def _change_workdir(config: dict[str, Any], rest: str, env: dict[str, str]) -> None:
    path = _expand(rest, env)
    config["WorkingDir"] = posixpath.normpath(posixpath.join(config.get("WorkingDir") or "/", path))


def _change_single(key: str) -> Callable[[dict[str, Any], str, dict[str, str]], None]:
    def change(config: dict[str, Any], rest: str, env: dict[str, str]) -> None:
        words = _words(rest, env)
        if len(words) != 1:
            raise SandboxError(f"{key} {rest!r}: expected exactly one argument")
        config["User" if key == "USER" else "StopSignal"] = words[0]
    return change


def _change_onbuild(config: dict[str, Any], rest: str, env: dict[str, str]) -> None:
    trigger = rest.split(None, 1)[0].upper()
    if trigger in ("ONBUILD", "FROM", "MAINTAINER"):
        raise SandboxError(f"ONBUILD {rest!r}: {trigger} isn't allowed as an ONBUILD trigger")
    config["OnBuild"] = list(config.get("OnBuild") or []) + [rest]


_CHANGES: dict[str, Callable[[dict[str, Any], str, dict[str, str]], None]] = {
    "CMD": lambda c, rest, env: c.__setitem__("Cmd", _exec_or_shell(rest)),
    "ENTRYPOINT": lambda c, rest, env: c.__setitem__("Entrypoint", _exec_or_shell(rest)),
    "ENV": _change_env, "EXPOSE": _change_expose, "LABEL": _change_label, "ONBUILD": _change_onbuild,
    "STOPSIGNAL": _change_single("STOPSIGNAL"), "USER": _change_single("USER"),
    "VOLUME": _change_volume, "WORKDIR": _change_workdir,
}


def _words(text: str, env: dict[str, str]) -> list[str]:
    """Split like Docker's shell lexer (the builder's, :mod:`sandbox.build.words`)."""
    from ..build import words
    try:
        return words.expand_words(text, env)
    except words.SubstitutionError as e:
        raise SandboxError(f"{e} in {text!r}") from None


def _expand(text: str, env: dict[str, str]) -> str:
    """One word: quotes removed and variables expanded, whitespace kept."""
    from ..build import words
    try:
        return words.expand(text, env)
    except words.SubstitutionError as e:
        raise SandboxError(f"{e} in {text!r}") from None
