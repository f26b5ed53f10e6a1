"""sandbox: a small container engine written in Python, for teaching.

The public API is what this module exports (``__all__``, checked by a test):
:class:`Engine` and the exception tree of :mod:`sandbox.errors`.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .engine import Engine, default_root  # noqa: E402
from .errors import (AmbiguousReference, ArchiveError, BlobCorrupt, BlobNotFound,  # noqa: E402
                     BootstrapError, Conflict, ImageInUse, ImageNotFound, InvalidReference,
                     KernelError, LayerError, LayerNotFound, NotFound, PermissionRequired,
                     SandboxError, StoreCorrupt, UnsafeLayerEntry, UsageError,
                     RegistryError, Unauthorized, RemoteNotFound, RegistryUnreachable,
                     CgroupError, CgroupUnavailable, InvalidResources, StoreFull)
from .image.images import Image  # noqa: E402
from .reference import Reference, parse as parse_reference  # noqa: E402



def load_ipython_extension(ipython: object) -> None:
    """``%load_ext sandbox`` registers the notebook magics (see the ``magics`` package)."""
    from magics import load_ipython_extension as load
    load(ipython)


__all__ = [
    "__version__", "Engine", "default_root", "Image", "Reference", "parse_reference",
    "SandboxError", "InvalidReference", "NotFound", "ImageNotFound", "BlobNotFound", "LayerNotFound",
    "Conflict", "ImageInUse", "AmbiguousReference", "StoreCorrupt", "BlobCorrupt", "LayerError",
    "UnsafeLayerEntry", "ArchiveError", "BootstrapError", "PermissionRequired", "KernelError", "UsageError",
    "RegistryError", "Unauthorized", "RemoteNotFound", "RegistryUnreachable",
    "CgroupError", "CgroupUnavailable", "InvalidResources", "StoreFull",
]
