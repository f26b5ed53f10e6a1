"""Docker's defaults as a reusable OCI runtime-spec (``config.json``) generator.

:func:`default_spec` turns a rootfs path and :class:`ContainerOptions` (what
``docker run`` flags mean) into a complete ``config.json`` dict, runtime-spec
v1.1.0, with the security defaults Docker gives every container
(DESIGN.md "Security defaults match Docker's"):

* 14 capabilities (:data:`DEFAULT_CAPABILITIES`), none inheritable; a non-root
  user keeps them only in the bounding set (Docker 23+), so its programs start
  without privileges.
* Masked ``/proc`` and ``/sys`` files that leak host details and read-only
  ``/proc`` directories that would change the host (:data:`MASKED_PATHS`,
  :data:`READONLY_PATHS`).
* A small ``/dev`` on tmpfs with six devices and a device cgroup that denies
  everything else (:data:`DEFAULT_DEVICES`, :data:`DEFAULT_DEVICE_RULES`).
* Docker's seccomp allowlist (:mod:`sandbox.runtime.seccomp_profile`).
* New pid, network, ipc, uts, mount and cgroup namespaces.  Docker gives a
  private cgroup namespace on v2 hosts only; here it is private on v1 too, so
  a container sees its own group as ``/`` in /proc/self/cgroup everywhere and
  a lab reads the same on every host (``cgroupns="host"`` restores Docker's v1
  behaviour).

What the host cannot grant is clamped, never half-applied: capabilities outside
the host's bounding set and rlimits above its hard limit are cut, and a
sentence goes into the ``warnings`` list the caller passes in (``docker run``
prints such warnings before the container starts).

This module is pure: it reads no host state itself, except the helpers that say
so (:func:`host_devices`, :func:`device_from_path`).  The host's bounding set,
cgroup version, architecture and rlimit hard limits are parameters.

References: github.com/opencontainers/runtime-spec (config.md,
config-linux.md), moby ``oci/defaults.go``, ``oci/caps``, ``daemon/oci_linux.go``.

The parts, one module each: :mod:`.options` (the input), :mod:`.process`,
:mod:`.capabilities`, :mod:`.rlimits`, :mod:`.mounts`, :mod:`.devices` and
:mod:`.linux` (namespaces, resources, sysctls, masked paths, seccomp); this
module puts them together and re-exports their public names.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from ...errors import UsageError
from .capabilities import ALL_CAPABILITIES, DEFAULT_CAPABILITIES, capability_set, normalize_capability
from .devices import DEFAULT_DEVICE_RULES, DEFAULT_DEVICES, device_from_path, host_devices, parse_device
from .linux import MASKED_PATHS, NAMESPACES, READONLY_PATHS, check_namespaces, linux_config
from .mounts import mount_list
from .options import (DEFAULT_INIT_BINARY, DEFAULT_SHM_SIZE, INIT_PATH_IN_CONTAINER, ContainerOptions,
                      ResourceLimits)
from .process import DEFAULT_PATH, container_env, parse_user, process_config
from .rlimits import RLIM_INFINITY, RLIMIT_NAMES, merge_ulimits, rlimits

__all__ = [
    "OCI_VERSION", "default_spec", "ContainerOptions", "ResourceLimits",
    "DEFAULT_PATH", "INIT_PATH_IN_CONTAINER", "DEFAULT_INIT_BINARY", "DEFAULT_SHM_SIZE",
    "DEFAULT_CAPABILITIES", "ALL_CAPABILITIES", "normalize_capability", "capability_set",
    "MASKED_PATHS", "READONLY_PATHS", "NAMESPACES",
    "DEFAULT_DEVICES", "DEFAULT_DEVICE_RULES", "parse_device", "device_from_path", "host_devices",
    "RLIM_INFINITY", "RLIMIT_NAMES", "rlimits", "parse_user", "container_env",
]

OCI_VERSION = "1.1.0"


def default_spec(rootfs: str, opts: ContainerOptions, *,
                 host_bounding_set: Collection[str] | None = None,
                 cgroup_version: str = "v2",
                 arch: str | None = None,
                 kernel: str | None = None,
                 host_device_list: Sequence[Mapping[str, Any]] | None = None,
                 default_ulimits: Sequence[tuple[str, int, int]] = (),
                 hard_limits: Mapping[str, int] | None = None,
                 warnings: list[str] | None = None) -> dict[str, Any]:
    """A complete ``config.json`` (OCI runtime-spec 1.1.0) for ``opts``.

    ``host_bounding_set`` clamps capabilities (None: no clamping);
    ``cgroup_version`` is "v1" or "v2"; ``arch``/``kernel`` pick the seccomp
    architectures and rules (the host's when None); ``host_device_list`` is
    what ``--privileged`` exposes (scanned with :func:`host_devices` when
    None); ``default_ulimits`` are the daemon's ``default-ulimits``, overridden
    per name by ``opts.ulimits``; ``hard_limits`` (name -> hard limit) clamps
    them.  Clamping messages are appended to ``warnings``.  Bad input raises
    :class:`~sandbox.errors.UsageError` before anything is built.
    """
    warnings = warnings if warnings is not None else []
    if cgroup_version not in ("v1", "v2"):
        raise UsageError(f"cgroup version must be 'v1' or 'v2', not {cgroup_version!r}")
    check_namespaces(opts)
    caps = capability_set(opts.cap_add, opts.cap_drop, opts.privileged, host_bounding_set,
                          warnings=warnings)
    ulimits = merge_ulimits(default_ulimits, opts.ulimits)
    limits, rlimit_warnings = rlimits(ulimits, hard_limits)
    warnings.extend(rlimit_warnings)
    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process_config(opts, caps, limits),
        "root": {"path": rootfs, "readonly": bool(opts.readonly_rootfs)},
        "mounts": mount_list(opts, cgroup_version),
        "linux": linux_config(opts, caps, cgroup_version, arch, kernel, host_device_list),
    }
    if opts.hostname and "uts" not in opts.host_namespaces:
        spec["hostname"] = opts.hostname  # runc refuses a hostname in the host's UTS namespace
    if opts.domainname and "uts" not in opts.host_namespaces:
        spec["domainname"] = opts.domainname
    annotations = dict(opts.annotations)
    if opts.stop_signal:
        annotations.setdefault("org.opencontainers.image.stopSignal", opts.stop_signal)
    if annotations:
        spec["annotations"] = annotations
    return spec
