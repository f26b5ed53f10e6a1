"""Media types of the OCI image spec and of Docker's v2 schema 2, and digest helpers."""

from __future__ import annotations

import hashlib
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


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


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
