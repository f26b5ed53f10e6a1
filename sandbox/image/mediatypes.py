"""Media types of the OCI image spec and of Docker's v2 schema 2, and digest helpers."""

from __future__ import annotations

import re

from ..errors import InvalidReference

OCI_LAYOUT_VERSION = "1.0.0"

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

MANIFESTS = {OCI_MANIFEST, DOCKER_MANIFEST}
INDEXES = {OCI_INDEX, DOCKER_MANIFEST_LIST}
LAYERS = {OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, DOCKER_LAYER, DOCKER_LAYER_GZIP,
          DOCKER_LAYER_FOREIGN, "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"}

#: index.json annotation holding the familiar name ("busybox:latest").
REF_NAME = "org.opencontainers.image.ref.name"
#: index.json annotation holding the fully qualified name (containerd's key).
FULL_NAME = "io.containerd.image.name"

_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")


#: Up to this many bytes, :func:`sha256_hex` uses CPython's own sha256 (see there).
SMALL = 1 << 16
_small_sha256 = None


def sha256_hex(data: bytes) -> str:
    """The sha256 of ``data`` in hex; a few kilobytes (a cache key, a config) without OpenSSL.

    ``import hashlib`` loads OpenSSL's ``_hashlib`` (~3 ms, 11 million
    instructions: a tenth of a cold build cache hit, which only hashes cache
    keys and a config).  CPython's ``_sha256`` (``_sha2`` from 3.12) gives
    the same digest at a fraction of the load, and is fast enough for small
    inputs; large ones (blobs, a context's files) go through hashlib's OpenSSL.
    """
    global _small_sha256
    if len(data) > SMALL:
        import hashlib
        return hashlib.sha256(data).hexdigest()
    if _small_sha256 is None:
        try:
            from _sha2 import sha256 as small  # type: ignore[import-not-found]  # CPython 3.12+
        except ImportError:
            try:
                from _sha256 import sha256 as small  # type: ignore[import-not-found,no-redef]  # 3.11
            except ImportError:
                from hashlib import sha256 as small  # type: ignore[assignment]  # another Python
        _small_sha256 = small
    return str(_small_sha256(data).hexdigest())


def sha256_digest(data: bytes) -> str:
    return "sha256:" + sha256_hex(data)


def check_digest(digest: str) -> str:
    """Return ``digest`` if it is a well-formed sha256 digest, else raise."""
    if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
        raise InvalidReference(f"invalid digest {digest!r}: expected sha256: and 64 lowercase hex digits")
    return digest


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The OCI ChainID of each layer prefix: ChainID(n) = sha256(ChainID(n-1) + " " + DiffID(n)).

    See the image spec, config.md "Layer ChainID".
    """
    out: list[str] = []
    for diff_id in diff_ids:
        out.append(diff_id if not out else sha256_digest(f"{out[-1]} {diff_id}".encode()))
    return out
