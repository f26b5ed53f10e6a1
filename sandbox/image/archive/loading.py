"""``load``: a docker-archive or OCI archive (plain, gzip, zstd, bzip2 or xz) into the store.

Both of Docker's shapes are read: ``manifest.json`` listing each image's config
file, layer files and ``RepoTags`` (Docker before v25 put layers in
``<v1-id>/layer.tar`` and the config in ``<id>.json``; skopeo writes
``<hex>.tar`` and ``<hex>.json``; Docker v25+ adds an OCI layout beside it),
and an OCI image layout whose ``index.json`` names images by the
``org.opencontainers.image.ref.name`` annotation (``busybox:latest``, or a bare
``latest`` next to containerd's ``io.containerd.image.name``).

Every blob is verified against its digest and every layer against the config's
``diff_ids`` before a single image is named, so a damaged archive leaves no
tag behind, and what it had stored is removed again.
"""

from __future__ import annotations

import contextlib
import json
import re
import zlib
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from collections.abc import Callable, Iterable, Iterator

from ... import reference as _ref
from ...errors import ArchiveError, BlobCorrupt, InvalidReference, LayerError, UnsafeLayerEntry
from ..images import Image, ImageStore, host_platform
from ..layers import LayerBlob, check_diff_id
from .. import fsutil, streams
from ..mediatypes import (FULL_NAME, INDEXES, LAYERS, MANIFESTS, OCI_CONFIG, OCI_LAYER,
                          OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_MANIFEST, REF_NAME, chain_ids,
                          sha256_digest)
from ..store import Store
from .common import LOAD_HINT, blob_name, cause
from .reader import Archive, normalise, open_archive

__all__ = ["describe_loaded", "load"]

Progress = Callable[[str], None]

_DAMAGED = "the archive is damaged; save or download it again"

_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")


@dataclass
class _LoadPlan:
    """One image of an archive, its blobs stored and their digests verified, not yet named."""

    config_digest: str
    layers: list[LayerBlob]
    tags: list[str]
    #: the archive member each layer came from, for errors that name it
    members: list[str] = field(default_factory=list)


def load(images: ImageStore, stream: BinaryIO, *, quiet: bool = False, progress: Progress | None = None,
         source_name: str | None = None) -> list[Image]:
    """``docker load``: read a docker-archive or OCI archive (plain, gzip, zstd, bzip2 or xz).

    Every blob is copied into the store and verified (digest, and diff_id for
    layers) for every image of the archive before any image is named, all under
    the store's transaction so garbage collection leaves the new blobs alone.  A
    new layer's diff_id is checked in the pass that unpacks it, so it is
    decompressed once.  On failure nothing is tagged, and the blobs and layers
    it wrote are removed again (left for GC while another writer holds the store).
    ``progress`` (unless ``quiet``) is called with one line per layer loaded.
    """
    source = source_name or _stream_name(stream)
    report = (lambda line: None) if quiet or progress is None else progress
    store = images.store
    with images.tidy_on_failure(), store.transaction(), open_archive(stream, store, source) as archive:
        fsutil.spread_subdirs(store.layers_dir)  # each layer in a roomy block group: creates stay cheap
        if archive.has("manifest.json"):
            plans = _load_docker(archive, store, report)
        elif archive.has("index.json"):
            plans = _load_oci(archive, store, report)
        else:
            raise ArchiveError(f"{source} is not an image archive: no manifest.json or index.json found",
                               hint=LOAD_HINT)
        plans = _merge_plans(plans)
        # Unpack everything first: a layer the unpacker refuses must not leave half the archive tagged.
        checked: set[tuple[str, str]] = set()
        sizes = [_unpack(images, p, source, checked) for p in plans]
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
        seen = merged.setdefault(plan.config_digest,
                                 _LoadPlan(plan.config_digest, plan.layers, [], plan.members))
        seen.tags += [t for t in plan.tags if t not in seen.tags]
    return list(merged.values())


def _unpack(images: ImageStore, plan: _LoadPlan, source: str, checked: set[tuple[str, str]]) -> int:
    """Unpack the plan's layers and check each against its diff_id; return the image's size.

    A new layer is checked by the pass that unpacks it (``LayerStore.unpack``).
    A layer already unpacked from another blob is not unpacked again, so its blob
    is hashed here; an uncompressed blob's digest is its diff_id already.
    """
    total, parent = 0, None
    for chain_id, layer, member in zip(chain_ids([l.diff_id for l in plan.layers]), plan.layers, plan.members):
        with _naming(member, source, layer):
            if not images.layers.exists(chain_id):
                total += images.layers.unpack(chain_id, parent, layer.diff_id, layer.digest).size
            else:
                if (layer.digest, layer.diff_id) not in checked and \
                        not (layer.media_type == OCI_LAYER and layer.digest == layer.diff_id):
                    check_diff_id(images.store, layer.digest, layer.diff_id)
                total += images.layers.get(chain_id).size
        checked.add((layer.digest, layer.diff_id))
        parent = chain_id
    return total


@contextlib.contextmanager
def _naming(member: str, source: str, layer: LayerBlob) -> Iterator[None]:
    """Errors about one layer name its member of the archive (an unsafe entry names itself)."""
    try:
        yield
    except BlobCorrupt as e:
        which = "digest" if e.digest == layer.digest else "diff_id"
        raise BlobCorrupt(e.digest, f"layer {member} of {source}, {which}", actual=e.actual,
                          hint=_DAMAGED) from None
    except UnsafeLayerEntry:
        raise
    except LayerError as e:
        raise ArchiveError(f"{source}: layer {member} cannot be unpacked ({cause(e)})", hint=e.hint) from None
    except (OSError, EOFError, zlib.error) as e:  # check_diff_id decompresses with gzip/zlib directly
        raise ArchiveError(f"{source}: layer {member} cannot be read ({cause(e)})", hint=_DAMAGED) from None


def _manifest_for(store: Store, plan: _LoadPlan) -> dict[str, Any]:
    return {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": plan.config_digest,
                   "size": store.blob_size(plan.config_digest)},
        "layers": [{"mediaType": l.media_type, "digest": l.digest, "size": l.size} for l in plan.layers],
    }

# -- docker-archive -----------------------------------------------------------

def _load_docker(archive: Archive, store: Store, report: Progress) -> list[_LoadPlan]:
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
        repo_tags = entry.get("RepoTags") or []
        if not isinstance(repo_tags, list) or not all(isinstance(t, str) for t in repo_tags):
            raise ArchiveError(f"{archive.source}: manifest.json entry has RepoTags {repo_tags!r}, not a list of names",
                               hint="the archive is damaged; save it again")
        tags = [_familiar_tag(t, archive.source) for t in repo_tags]
        config_name = normalise(entry["Config"])
        config_digest, config = _store_config(archive, store, config_name, _digest_in_name(config_name))
        diff_ids = _diff_ids(config, config_name, len(entry["Layers"]), archive.source)
        layers, members = [], []
        for raw_name, diff_id in zip(entry["Layers"], diff_ids):
            name = normalise(str(raw_name))
            if name not in done:
                done[name] = _store_layer(archive, store, name, _digest_in_name(name), None, diff_id, report)
            elif done[name].diff_id != diff_id:
                raise ArchiveError(f"{archive.source}: layer {name} is listed with two different diff_ids",
                                   hint="the archive is damaged; save it again")
            layers.append(done[name])
            members.append(name)
        plans.append(_LoadPlan(config_digest, layers, tags, members))
    return plans


def _digest_in_name(name: str) -> str | None:
    """The digest a member's name promises: ``blobs/sha256/<hex>`` (and skopeo's/old docker's ``<hex>.json``)."""
    m = re.fullmatch(r"blobs/sha256/([a-f0-9]{64})|([a-f0-9]{64})\.json", name)
    return "sha256:" + (m.group(1) or m.group(2)) if m else None


def _store_config(archive: Archive, store: Store, name: str, expected: str | None) -> tuple[str, dict[str, Any]]:
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
    rootfs = config.get("rootfs") or {}
    diff_ids = (rootfs.get("diff_ids") if isinstance(rootfs, dict) else None) or []
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) and _DIGEST.fullmatch(d) for d in diff_ids):
        raise ArchiveError(f"{source}: image config {name} has no list of sha256 diff_ids under rootfs",
                           hint="the archive is damaged; save it again")
    if len(diff_ids) != count:
        raise ArchiveError(f"{source}: image config {name} lists {len(diff_ids)} layers "
                           f"but the archive gives {count}", hint="the archive is damaged; save it again")
    return list(diff_ids)


def _store_layer(archive: Archive, store: Store, name: str, expected: str | None, size: int | None,
                 diff_id: str, report: Progress) -> LayerBlob:
    """Copy one layer into the store and check its digest; return it as the manifest sees it.

    Its diff_id is checked when it is unpacked (:func:`_unpack`), in the same pass.
    """
    what = f"layer {name} of {archive.source}, digest"
    hint = _DAMAGED
    f, member_size = archive.open(name)
    if size is not None and member_size != size:
        raise ArchiveError(f"{archive.source}: layer {name} is {member_size} bytes, its descriptor says {size}",
                           hint=hint)
    try:
        digest, stored = store.put_stream(f, expected)  # type: ignore[arg-type]
    except BlobCorrupt as e:
        raise BlobCorrupt(e.digest, what, actual=e.actual, hint=hint) from None
    media_type = _layer_media_type(store, digest, name, archive.source)
    report(f"Loaded layer {diff_id[7:19]} ({_human(stored)})")
    return LayerBlob(diff_id, digest, stored, media_type)


def _layer_media_type(store: Store, digest: str, name: str, source: str) -> str:
    with open(store.blob_path(digest), "rb") as f:
        head = f.read(streams.SNIFF_BYTES)
    kind = streams.compression(head)
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


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.3g}{unit}"
        value /= 1000
    return f"{size}B"


# -- OCI archive ---------------------------------------------------------------

def _load_oci(archive: Archive, store: Store, report: Progress) -> list[_LoadPlan]:
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
        config_desc = _check_descriptor(manifest.get("config"), blob_name(manifest_desc["digest"]), archive.source)
        config_name = blob_name(config_desc["digest"])
        config_digest, config = _store_config(archive, store, config_name, config_desc["digest"])
        layers_in = manifest.get("layers") or []
        if not isinstance(layers_in, list):
            raise ArchiveError(f"{archive.source}: manifest {manifest_desc['digest']} has layers {layers_in!r}, "
                               "not a list", hint=_DAMAGED)
        layer_descs = [_check_descriptor(l, config_name, archive.source) for l in layers_in]
        diff_ids = _diff_ids(config, config_name, len(layer_descs), archive.source)
        layers, members = [], []
        for ldesc, diff_id in zip(layer_descs, diff_ids):
            if ldesc["mediaType"] not in LAYERS:
                raise ArchiveError(f"{archive.source}: layer {ldesc['digest']} has unknown media type "
                                   f"{ldesc['mediaType']!r}", hint="only OCI and Docker layer tars can be loaded")
            if ldesc["digest"] not in done:
                done[ldesc["digest"]] = _store_layer(archive, store, blob_name(ldesc["digest"]), ldesc["digest"],
                                                     ldesc["size"], diff_id, report)
            layers.append(done[ldesc["digest"]])
            members.append(blob_name(ldesc["digest"]))
        plans.append(_LoadPlan(config_digest, layers, tags, members))
    return plans


def _check_descriptor(desc: Any, where: str, source: str) -> dict[str, Any]:
    if not isinstance(desc, dict) or not isinstance(desc.get("mediaType"), str) \
            or not _DIGEST.fullmatch(str(desc.get("digest"))) \
            or not isinstance(desc.get("size"), int) \
            or not all(isinstance(desc.get(k) or {}, dict) for k in ("platform", "annotations")):
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


def _pick_manifest(archive: Archive, desc: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    """Follow (possibly nested) indexes down to the manifest for this host's platform."""
    if desc["mediaType"] in MANIFESTS:
        return desc
    if desc["mediaType"] not in INDEXES or depth > 4:
        raise ArchiveError(f"{archive.source}: {desc['digest']} has unsupported media type {desc['mediaType']!r}",
                           hint="the archive holds something other than images")
    index = _read_blob_json(archive, None, desc, "image index")
    if not isinstance(index.get("manifests") or [], list):
        raise ArchiveError(f"{archive.source}: image index {desc['digest']} has no list of manifests", hint=_DAMAGED)
    children = [_check_descriptor(d, blob_name(desc["digest"]), archive.source) for d in index.get("manifests") or []]
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


def _read_blob_json(archive: Archive, store: Store | None, desc: dict[str, Any], what: str) -> dict[str, Any]:
    name = blob_name(desc["digest"])
    data = archive.read(name, what)
    if sha256_digest(data) != desc["digest"]:
        raise BlobCorrupt(desc["digest"], f"{what} {name} of {archive.source}, digest", actual=sha256_digest(data),
                          hint="the archive is damaged; save or download it again")
    return _json_object(data, archive.source, f"{what} {name}")
