"""``save``: images out of the store as one docker-archive or OCI archive tar.

The archive is a docker-archive that ``docker load`` (old and new) and skopeo's
``docker-archive:`` read: ``manifest.json`` + ``repositories`` + an OCI layout,
as Docker v25+ writes it; or, with ``format="oci"``, an OCI image layout tar
(skopeo's ``oci-archive:``) whose ref names are the familiar names.  It streams
(no seeking on its output), and the same images give the same bytes: sorted
entries, mtime 0, owner 0:0.  Blobs are copied as stored and verified on the way.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ... import reference as _ref
from ...errors import BlobCorrupt, InvalidReference, SandboxError
from .. import fsutil
from ..images import Image, ImageStore
from ..mediatypes import (DOCKER_LAYER, DOCKER_LAYER_FOREIGN, DOCKER_LAYER_GZIP, FULL_NAME,
                          OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYOUT_VERSION,
                          OCI_MANIFEST, REF_NAME, sha256_digest)
from ..store import Store
from .common import blob_name

__all__ = ["save"]

#: Docker's media types mapped to OCI's, for manifests written into an OCI archive.
_TO_OCI_LAYER = {DOCKER_LAYER: OCI_LAYER, DOCKER_LAYER_GZIP: OCI_LAYER_GZIP,
                 DOCKER_LAYER_FOREIGN: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"}


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
        files[blob_name(manifest_digest)] = manifest_bytes
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
        docker_manifest.append({"Config": blob_name(config_digest), "RepoTags": list(item.tags),
                                "Layers": [blob_name(d) for d in layer_digests]})
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


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _write_tar(store: Store, out: BinaryIO, files: dict[str, bytes], blobs: dict[str, int]) -> None:
    entries: dict[str, Any] = {"blobs": None, "blobs/sha256": None, **files}
    entries.update({blob_name(d): d for d in blobs})
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


