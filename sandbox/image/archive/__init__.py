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
:mod:`..tarlayer`, so the same tree gives the same diff_id and, under
``SOURCE_DATE_EPOCH``, the same image id on every machine.

Callers import from here; one module per verb:

=============  ===============================================================
``saving``     ``save``: images to a docker-archive or OCI archive
``loading``    ``load``: both archive shapes into the store, verified
``reader``     random access to an archive's members (spooled when compressed)
``importing``  ``import``: a root filesystem tarball to a one-layer image
``changes``    ``--change`` lines (``CMD``, ``ENV``, ...) applied to a config
``common``     blob member names and error wording the others share
=============  ===============================================================
"""

from __future__ import annotations

from .changes import VALID_CHANGES, apply_changes
from .importing import import_rootfs
from .loading import describe_loaded, load
from .saving import save

__all__ = ["save", "load", "describe_loaded", "import_rootfs", "apply_changes", "VALID_CHANGES"]
