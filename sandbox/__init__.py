"""sandbox: a small container engine written in Python, for teaching.

The public API is what this module exports (``__all__``, checked by a test):
:class:`Engine` and the exception tree of :mod:`sandbox.errors`.
"""

from __future__ import annotations

from ._version import __version__
from .errors import (AmbiguousReference, ArchiveError, BlobCorrupt, BlobNotFound,
                     BootstrapError, Conflict, ImageInUse, ImageNotFound, InvalidReference,
                     KernelError, LayerError, LayerNotFound, NotFound, PermissionRequired,
                     SandboxError, StoreCorrupt, UnsafeLayerEntry, UsageError,
                     RegistryError, Unauthorized, RemoteNotFound, RegistryUnreachable,
                     CgroupError, CgroupUnavailable, InvalidResources, StoreFull,
                     ContainerNotFound, ContainerExists, InvalidStateTransition, InvalidSpec,
                     ContainerStartError, CommandNotFound, CommandNotExecutable,
                     VolumeNotFound, ContainerError, SupervisorError, SupervisorLost,
                     DockerfileSyntaxError, BuildError, NetworkNotFound, NetworkInUse, PortInUse,
                     NetworkError)

TYPE_CHECKING = False  # not typing's: a cold `sandbox ps` should not import typing (see sandbox.cli)
if TYPE_CHECKING:
    from typing import Any

    from .engine import Engine, default_root
    from .image.images import Image
    from .reference import Reference, parse as parse_reference

#: Public names whose modules load on first use: ``import sandbox`` (and the
#: runtime, and a cold ``sandbox run``) must not pay for the image stack.
_LAZY = {"Engine": ("engine", "Engine"), "default_root": ("engine", "default_root"),
         "Image": ("image.images", "Image"), "Reference": ("reference", "Reference"),
         "parse_reference": ("reference", "parse")}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sandbox' has no attribute {name!r}")


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext sandbox`` registers the notebook magics (see the ``magics`` package).

    The one arrow from the engine's side up to the notebook layer: IPython
    looks for this function on the module named in ``%load_ext``.  The magics
    themselves import ``sandbox.engine``, never this facade, so the two do
    not form a circle.
    """
    from magics import load_ipython_extension as load
    load(ipython)


__all__ = [
    "__version__", "Engine", "default_root", "Image", "Reference", "parse_reference",
    "SandboxError", "InvalidReference", "NotFound", "ImageNotFound", "BlobNotFound", "LayerNotFound",
    "Conflict", "ImageInUse", "AmbiguousReference", "StoreCorrupt", "BlobCorrupt", "LayerError",
    "UnsafeLayerEntry", "ArchiveError", "BootstrapError", "PermissionRequired", "KernelError", "UsageError",
    "RegistryError", "Unauthorized", "RemoteNotFound", "RegistryUnreachable",
    "CgroupError", "CgroupUnavailable", "InvalidResources", "StoreFull",
    "ContainerNotFound", "ContainerExists", "InvalidStateTransition", "InvalidSpec",
    "ContainerStartError", "CommandNotFound", "CommandNotExecutable",
    "VolumeNotFound", "ContainerError", "SupervisorError", "SupervisorLost", "DockerfileSyntaxError", "BuildError",
    "NetworkNotFound", "NetworkInUse", "PortInUse", "NetworkError",
]
