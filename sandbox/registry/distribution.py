"""Pull and push over the OCI distribution API (Docker registry v2).

Pull: resolve the tag to a manifest (an index or manifest list picks this
machine's platform), fetch the config and every layer the store lacks, verify
each digest as the bytes arrive, unpack each new layer (one pass checks its
digest, its diff_id and every entry), and only then tag.  A dropped download
resumes with a Range request.

Push: for each blob, ask the registry whether it has it (HEAD), else try a
cross-repository mount from a repository on the same registry known to hold
it, else upload it (monolithic, or in chunks for big blobs); a dropped upload
starts again a few times before giving up.  The manifest goes last, byte for
byte as stored, so its digest is the same on both sides.

Progress is reported as Docker's JSON messages: ``{"id": "3f2a..", "status":
"Downloading", "progressDetail": {"current": n, "total": m}}``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import time
import urllib.parse
from dataclasses import dataclass
from typing import IO, Any, cast
from collections.abc import Callable

from .. import reference as _ref
from ..errors import BlobCorrupt, BlobNotFound, RegistryError, RegistryUnreachable, SandboxError
from ..image import fsutil
from ..image.images import Image, ImageStore, host_platform
from ..image.mediatypes import (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, INDEXES, MANIFESTS, OCI_INDEX,
                                OCI_MANIFEST, sha256_digest)
from .transport import BACKOFF, RETRIES, Response, Transport

Progress = Callable[[dict[str, Any]], None]
ACCEPT = ", ".join([OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST])
CHUNK = 1 << 20
#: Blobs larger than this go up in PATCH chunks of this size (resumable units).
UPLOAD_CHUNK = 16 << 20

_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")


def _quiet(_: dict[str, Any]) -> None:
    pass


def short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


@dataclass
class PullResult:
    image: Image
    digest: str
    downloaded: int  # bytes fetched
    status: str


class _BlobSources:
    """Which repositories (``registry/repo``) are known to hold a blob, for cross-repo mounts."""

    def __init__(self, images: ImageStore) -> None:
        self.path = images.store.meta_dir / "blob-sources.json"
        self.lock = images.store.index_lock

    def get(self, digest: str) -> list[str]:
        try:
            return list(json.loads(self.path.read_bytes()).get(digest, []))
        except (FileNotFoundError, ValueError):
            return []

    def add(self, digests: list[str], source: str) -> None:
        with self.lock.hold():
            try:
                data = json.loads(self.path.read_bytes())
            except (FileNotFoundError, ValueError):
                data = {}
            for d in digests:
                data[d] = sorted(set(data.get(d, [])) | {source})[-8:]
            fsutil.atomic_write_json(self.path, data)


# -- pull ------------------------------------------------------------------------

def pull(images: ImageStore, name: str, *, platform: str | None = None, progress: Progress | None = None,
         transport: Transport | None = None) -> PullResult:
    """``docker pull NAME``: fetch, verify, unpack, then tag.

    Nothing is tagged on any failure, and the blobs and layers fetched so far are
    removed again (left for GC while another writer holds the store).
    """
    emit = progress or _quiet
    ref = _ref.parse(name)
    t = transport or Transport(ref.registry)
    scope = f"repository:{ref.repository}:pull"
    wanted = _parse_platform(platform)
    try:
        with images.tidy_on_failure(), images.store.transaction():
            fsutil.spread_subdirs(images.store.layers_dir)  # each layer in a roomy block group
            data, media_type, digest = _fetch_manifest(t, ref, ref.digest or ref.tag or "latest", scope)
            if media_type in INDEXES:  # RepoDigests keep the index digest, as Docker's do
                child = _choose_platform(json.loads(data), wanted, ref)
                data, media_type, _ = _fetch_manifest(t, ref, child, scope, expect=child)
            emit({"status": f"Pulling from {ref.repository}", "id": ref.tag or short(ref.digest or "")})
            manifest = _image_manifest(data, t, ref)
            downloaded = _fetch_blobs(images, t, ref, manifest, scope, emit)
            _check_config(images, t, ref, manifest)
            tags = [ref.familiar] if ref.tag and not ref.digest else []  # name@digest pins, never tags
            # Not verify_diff_ids: unpacking checks each new layer's diff_id (and its digest and
            # every entry) in the one pass that decompresses it; checking first was a second pass.
            image = images.add_manifest_bytes(data, tags=tags, repo_digests=[f"{ref.familiar_name}@{digest}"])
    finally:
        if transport is None:
            t.close()
    _BlobSources(images).add([manifest["config"]["digest"]] + [l["digest"] for l in manifest["layers"]],
                             f"{ref.registry}/{ref.repository}")
    status = f"Downloaded newer image for {ref.familiar}" if downloaded else f"Image is up to date for {ref.familiar}"
    emit({"status": f"Digest: {digest}"})
    emit({"status": f"Status: {status}"})
    return PullResult(image, digest, downloaded, status)


def _fetch_manifest(t: Transport, ref: _ref.Reference, what: str, scope: str,
                    expect: str | None = None) -> tuple[bytes, str, str]:
    r = t.request("GET", f"/v2/{ref.repository}/manifests/{what}", scope=scope,
                  headers={"Accept": ACCEPT}, what=f"{ref.familiar_name}:{what}" if ":" not in what else ref.familiar)
    data = r.body
    digest = sha256_digest(data)
    expected = expect or (what if what.startswith("sha256:") else None)
    if expected and digest != expected:
        raise BlobCorrupt(expected, "manifest", actual=digest,
                          hint="the registry sent a manifest that does not match the digest asked for")
    header = r.header("docker-content-digest")
    if header and header.startswith("sha256:") and header != digest:
        raise BlobCorrupt(header, "manifest", actual=digest, hint="the manifest was damaged on the way; pull again")
    try:
        document = json.loads(data)
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
        media_type = document.get("mediaType") or (r.header("content-type") or "").split(";")[0]
        if not isinstance(media_type, str):
            raise ValueError(f"its mediaType is {media_type!r}")
    except ValueError as e:
        raise RegistryError(f"{t.registry} sent a manifest for {ref.familiar} that is not a JSON object "
                            f"with a media type ({e})", hint="the image on the registry is damaged") from None
    if media_type not in MANIFESTS | INDEXES:
        raise RegistryError(f"{ref.familiar} has a manifest of type {media_type!r}, which this engine cannot run",
                            hint="only OCI and Docker v2 schema 2 images are supported")
    return data, media_type, digest


def _image_manifest(data: bytes, t: Transport, ref: _ref.Reference) -> dict[str, Any]:
    """The manifest as a dict, checked for the fields a pull relies on."""
    manifest = json.loads(data)
    config = manifest.get("config")
    layers = manifest.get("layers")
    if not (isinstance(layers, list) and all(_is_descriptor(d) for d in [config, *layers])):
        raise RegistryError(f"{t.registry} sent a malformed manifest for {ref.familiar}",
                            hint="the image on the registry is damaged or in a format this engine does not know")
    return manifest


def _is_descriptor(desc: Any) -> bool:
    """A blob descriptor a pull can use: a sha256 digest and a size (the download stops there)."""
    return isinstance(desc, dict) and isinstance(desc.get("digest"), str) and bool(_DIGEST.fullmatch(desc["digest"])) \
        and isinstance(desc.get("size"), int) and not isinstance(desc["size"], bool) and desc["size"] >= 0


def _check_config(images: ImageStore, t: Transport, ref: _ref.Reference, manifest: dict[str, Any]) -> None:
    """The image config names one sha256 diff_id per layer of the manifest (the store relies on it)."""
    try:
        config = json.loads(images.store.read_blob(manifest["config"]["digest"], "image config"))
    except ValueError:
        config = None
    rootfs = config.get("rootfs") if isinstance(config, dict) else None
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or len(diff_ids) != len(manifest["layers"]) \
            or not all(isinstance(d, str) and _DIGEST.fullmatch(d) for d in diff_ids):
        raise RegistryError(f"{t.registry} sent an image config for {ref.familiar} that does not list "
                            f"one diff_id per layer of its manifest ({len(manifest['layers'])})",
                            hint="the image on the registry is damaged")


def _parse_platform(platform: str | None) -> tuple[str, str, str | None]:
    if not platform:
        return host_platform()
    parts = platform.split("/")
    if len(parts) < 2:
        raise RegistryError(f"invalid platform {platform!r}", hint="write it as os/arch[/variant], e.g. linux/arm64")
    return parts[0], parts[1], parts[2] if len(parts) > 2 else None


def _choose_platform(index: dict[str, Any], wanted: tuple[str, str, str | None], ref: _ref.Reference) -> str:
    os_name, arch, variant = wanted
    listed = index.get("manifests")
    if not isinstance(listed, list):
        raise RegistryError(f"{ref.familiar} has an image index without a list of manifests",
                            hint="the image on the registry is damaged")
    entries = [m for m in listed if isinstance(m, dict) and isinstance(m.get("digest"), str)
               and _DIGEST.fullmatch(m["digest"]) and isinstance(m.get("platform") or {}, dict)]
    candidates = [m for m in entries
                  if (m.get("platform") or {}).get("os") == os_name
                  and (m.get("platform") or {}).get("architecture") == arch]
    exact = [m for m in candidates if variant is None or (m.get("platform") or {}).get("variant") in (variant, None)]
    chosen = (exact or candidates)
    if not chosen:
        have = sorted({f"{(m.get('platform') or {}).get('os')}/{(m.get('platform') or {}).get('architecture')}"
                       for m in entries})
        raise RegistryError(f"{ref.familiar} has no image for {os_name}/{arch} (it has {', '.join(have) or 'none'})",
                            hint="choose one with --platform")
    return str(chosen[0]["digest"])


def _fetch_blobs(images: ImageStore, t: Transport, ref: _ref.Reference, manifest: dict[str, Any],
                 scope: str, emit: Progress) -> int:
    total = 0
    layers = manifest.get("layers", [])
    for layer in layers:
        if images.store.has_blob(layer["digest"]):
            emit({"id": short(layer["digest"]), "status": "Already exists"})
        else:
            emit({"id": short(layer["digest"]), "status": "Pulling fs layer"})
    config = manifest["config"]
    if not images.store.has_blob(config["digest"]):
        total += _download(images, t, ref, config["digest"], config["size"], scope, _quiet, "config")
    for layer in layers:
        if not images.store.has_blob(layer["digest"]):
            total += _download(images, t, ref, layer["digest"], layer["size"], scope, emit, "layer")
            emit({"id": short(layer["digest"]), "status": "Pull complete"})
    return total


def _with_retries(t: Transport, emit: Progress, sid: str, attempt: Callable[[], None],
                  failure: str, hint: str) -> None:
    """Run ``attempt`` until it succeeds, at most RETRIES times with backoff, for dropped connections."""
    failures = 0
    while True:
        try:
            attempt()
            return
        except (ConnectionError, TimeoutError, socket.gaierror, http.client.HTTPException,
                RegistryUnreachable) as e:
            failures += 1
            t.close()
            if failures >= RETRIES:
                raise RegistryUnreachable(f"{failure} failed {failures} times: {e}", hint=hint) from None
            emit({"id": sid, "status": f"Retrying in {BACKOFF[failures - 1]:.1f}s"})
            time.sleep(BACKOFF[failures - 1])


def _download(images: ImageStore, t: Transport, ref: _ref.Reference, digest: str, size: int, scope: str,
              emit: Progress, what: str) -> int:
    """Fetch one blob into the store, resuming with Range after a drop; verify its digest."""
    path = f"/v2/{ref.repository}/blobs/{digest}"
    writer = images.store.ingest()

    def attempt() -> None:
        nonlocal writer
        headers = {"Range": f"bytes={writer.size}-"} if writer.size else {}
        r = t.get_following(path, scope=scope, headers=headers, stream=True, retry=False,
                            what=f"{what} {short(digest)} of {ref.familiar_name}")
        if writer.size and not (r.status == 206 and
                                (r.header("content-range") or "").startswith(f"bytes {writer.size}-")):
            # The server ignored our Range or answered another one: start from zero.
            writer.abort()
            writer = images.store.ingest()
            if r.status == 206:
                if r.raw:
                    r.raw.close()
                raise ConnectionError("the registry answered a different byte range")
        if not _copy(r, writer, size, emit, short(digest)):
            t.close()  # the rest of an over-long body is still on the connection
        if writer.size < size:
            raise ConnectionError(f"connection closed after {writer.size} of {size} bytes")

    try:
        _with_retries(t, emit, short(digest), attempt, f"downloading {what} {short(digest)} of {ref.familiar}",
                      "check the network and pull again")
        emit({"id": short(digest), "status": "Verifying Checksum"})
        writer.commit(digest)  # raises BlobCorrupt naming the digest; nothing is tagged then
        emit({"id": short(digest), "status": "Download complete"})
        return writer.size
    finally:
        writer.abort()  # no-op after a commit


def _copy(r: Response, writer: Any, size: int, emit: Progress, sid: str) -> bool:
    """Copy the body into ``writer``, never past the ``size`` the manifest gives; True if the body ended.

    Stopping at ``size`` bounds an endless (or malicious) body; the digest check
    then decides whether the bytes were the blob.
    """
    assert r.raw is not None
    last = 0.0
    try:
        while (left := size - writer.size) > 0 and (chunk := r.raw.read(min(CHUNK, left))):
            try:
                writer.write(chunk)
            except OSError as e:
                raise SandboxError(f"cannot write {sid} into the store: {e.strerror}",
                                   hint="free some disk space and pull again") from None
            now = time.monotonic()
            if now - last > 0.1:
                last = now
                emit({"id": sid, "status": "Downloading",
                      "progressDetail": {"current": writer.size, "total": size}})
        return r.raw.isclosed()
    finally:
        r.raw.close()


# -- push ------------------------------------------------------------------------

@dataclass
class PushResult:
    digest: str
    size: int
    uploaded: int  # bytes sent
    skipped: list[str]
    mounted: list[str]


def push(images: ImageStore, name: str, *, progress: Progress | None = None,
         transport: Transport | None = None, chunk_size: int = UPLOAD_CHUNK) -> PushResult:
    """``docker push NAME``: layers and config first, then the manifest as stored."""
    emit = progress or _quiet
    ref = _ref.parse(name)
    if ref.tag is None:
        raise RegistryError(f"cannot push {name}: name a tag, not a digest", hint="e.g. localhost:5000/app:v1")
    image = images.get(ref.familiar)
    t = transport or Transport(ref.registry)
    scope = f"repository:{ref.repository}:pull,push"
    sources = _BlobSources(images)
    result = PushResult("", 0, 0, [], [])
    try:
        emit({"status": f"The push refers to repository [{ref.name}]"})
        manifest_bytes = images.store.read_blob(image.manifest_digest, "manifest")
        blobs = [(l.digest, l.size) for l in image.layers] + [(image.id, images.store.blob_size(image.id))]
        for digest, size in blobs:
            quiet = digest == image.id  # like Docker, report layers only, not the config
            _push_blob(images, t, ref, scope, digest, size, sources, _quiet if quiet else emit, result, chunk_size)
        media_type = json.loads(manifest_bytes).get("mediaType") or OCI_MANIFEST
        r = t.request("PUT", f"/v2/{ref.repository}/manifests/{ref.tag}", scope=scope,
                      headers={"Content-Type": media_type}, body=manifest_bytes, ok=(201,),
                      what=f"the manifest of {ref.familiar}")
        digest = r.header("docker-content-digest") or image.manifest_digest
        if digest != image.manifest_digest:
            raise BlobCorrupt(image.manifest_digest, "manifest", actual=digest,
                              hint="the registry stored the manifest under another digest; it may have rewritten it")
    finally:
        if transport is None:
            t.close()
    images.store.update_image_meta(image.id, repo_digests=[f"{ref.familiar_name}@{digest}"])
    sources.add([d for d, _ in blobs], f"{ref.registry}/{ref.repository}")
    result.digest, result.size = digest, len(manifest_bytes)
    emit({"status": f"{ref.tag}: digest: {digest} size: {len(manifest_bytes)}"})
    return result


def _push_blob(images: ImageStore, t: Transport, ref: _ref.Reference, scope: str, digest: str, size: int,
               sources: _BlobSources, emit: Progress, result: PushResult, chunk_size: int) -> None:
    sid = short(digest)
    if t.request("HEAD", f"/v2/{ref.repository}/blobs/{digest}", scope=scope, ok=(200, 404),
                 what=f"blob {sid}").status == 200:
        emit({"id": sid, "status": "Layer already exists"})
        result.skipped.append(digest)
        return
    for source in sources.get(digest):
        registry, _, repo = source.partition("/")
        if registry != ref.registry or repo == ref.repository:
            continue
        mount_scope = f"{scope} repository:{repo}:pull"
        try:
            r = t.request("POST", f"/v2/{ref.repository}/blobs/uploads/?mount={digest}&from={urllib.parse.quote(repo)}",
                          scope=mount_scope, ok=(201, 202), what=f"mount of {sid}")
        except RegistryUnreachable:
            raise
        except RegistryError:
            break  # e.g. no pull access to the source any more: upload instead
        if r.status == 201:
            emit({"id": sid, "status": f"Mounted from {repo}"})
            result.mounted.append(digest)
            return
        with contextlib.suppress(SandboxError):  # a session was opened instead: cancel it
            t.request("DELETE", r.header("location") or "", scope=scope, ok=(204, 404))
        break
    _with_retries(t, emit, sid, lambda: _upload(images, t, ref, scope, digest, size, emit, chunk_size),
                  f"uploading {sid} to {ref.registry}",
                  "check the network and push again; layers already uploaded will be skipped")
    result.uploaded += size
    emit({"id": sid, "status": "Pushed"})


def _upload(images: ImageStore, t: Transport, ref: _ref.Reference, scope: str, digest: str, size: int,
            emit: Progress, chunk_size: int) -> None:
    """One upload session: POST, then one PUT (small) or PATCH chunks and a closing PUT (big)."""
    sid = short(digest)
    if not images.store.has_blob(digest):
        raise BlobNotFound(f"blob {digest} of {ref.familiar} is missing from the store",
                           hint="remove the image with 'sandbox rmi -f' and pull, load or build it again")
    r = t.request("POST", f"/v2/{ref.repository}/blobs/uploads/", scope=scope, ok=(202,), retry=False,
                  what=f"an upload of {sid}")
    location = r.header("location") or ""
    with open(images.store.blob_path(digest), "rb") as f:
        if size <= chunk_size:
            emit({"id": sid, "status": "Pushing", "progressDetail": {"current": 0, "total": size}})
            t.request("PUT", _with_digest(location, digest), scope=scope, body=f, length=size, ok=(201,),
                      headers={"Content-Type": "application/octet-stream"}, retry=False, what=f"layer {sid}")
            return
        offset = 0
        while offset < size:
            n = min(chunk_size, size - offset)
            r = t.request("PATCH", location, scope=scope, body=cast(IO[bytes], _Slice(f, offset, n)), length=n, ok=(202,),
                          headers={"Content-Type": "application/octet-stream",
                                   "Content-Range": f"{offset}-{offset + n - 1}"},
                          retry=False, what=f"layer {sid}")
            location = r.header("location") or location
            offset += n
            emit({"id": sid, "status": "Pushing", "progressDetail": {"current": offset, "total": size}})
        t.request("PUT", _with_digest(location, digest), scope=scope, ok=(201,), retry=False,
                  what=f"layer {sid}")


def _with_digest(location: str, digest: str) -> str:
    return location + ("&" if "?" in location else "?") + urllib.parse.urlencode({"digest": digest})


class _Slice:
    """A read-only window of a file, so http.client streams a chunk without loading it."""

    def __init__(self, f: IO[bytes], offset: int, length: int) -> None:
        self.f, self.offset, self.length, self.pos = f, offset, length, 0
        f.seek(offset)

    def read(self, n: int = -1) -> bytes:
        left = self.length - self.pos
        n = left if n < 0 else min(n, left)
        data = self.f.read(n)
        self.pos += len(data)
        return data

    def seek(self, pos: int) -> None:
        self.pos = pos
        self.f.seek(self.offset + pos)
