"""Devices: the six every container gets, ``--device``, ``--privileged``'s host devices, and the device cgroup rules.

The only part of the generator that reads the host, in the helpers that say
so (:func:`host_devices`, :func:`device_from_path`); :func:`device_config`
takes the privileged list as a parameter, so tests need no real /dev.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from typing import Any

from ...errors import UsageError
from .options import ContainerOptions


def _device(path: str, major: int, minor: int, kind: str = "c") -> dict[str, Any]:
    return {"path": path, "type": kind, "major": major, "minor": minor,
            "fileMode": 0o666, "uid": 0, "gid": 0}


#: The devices every container gets (OCI config-linux.md "Default Devices").
#: /dev/console and /dev/ptmx are made by the runtime (console when a terminal
#: is asked for, ptmx as a symlink to pts/ptmx).
DEFAULT_DEVICES: tuple[dict[str, Any], ...] = (
    _device("/dev/null", 1, 3), _device("/dev/zero", 1, 5), _device("/dev/full", 1, 7),
    _device("/dev/random", 1, 8), _device("/dev/urandom", 1, 9), _device("/dev/tty", 5, 0),
)


def device_rule(allow: bool, kind: str | None = None, major: int | None = None,
                minor: int | None = None, access: str = "rwm") -> dict[str, Any]:
    """One entry of ``linux.resources.devices``; a missing type, major or minor means "*"."""
    rule: dict[str, Any] = {"allow": allow}
    if kind is not None:
        rule["type"] = kind
    if major is not None:
        rule["major"] = major
    if minor is not None:
        rule["minor"] = minor
    rule["access"] = access
    return rule


#: The device cgroup: deny everything, then allow mknod of any node (opening
#: it is still refused), the default devices and the terminal devices
#: (/dev/console 5:1, /dev/ptmx 5:2, /dev/pts/* 136:*), as Docker and runc do.
#: A missing major/minor means "*".  No deny may follow a wildcard allow: cgroup
#: v1 cannot punch a hole into an allowed range (runc refuses such a list).
DEFAULT_DEVICE_RULES: tuple[dict[str, Any], ...] = (
    device_rule(False),
    device_rule(True, "c", access="m"),
    device_rule(True, "b", access="m"),
    *(device_rule(True, d["type"], d["major"], d["minor"]) for d in DEFAULT_DEVICES),
    device_rule(True, "c", 5, 1),
    device_rule(True, "c", 5, 2),
    device_rule(True, "c", 136),
)


def parse_device(spec: str) -> dict[str, str]:
    """docker's ``--device host[:container[:perms]]`` -> its HostConfig entry.

    Returns ``{"PathOnHost", "PathInContainer", "CgroupPermissions"}`` (what
    ``docker inspect`` shows).  As in Docker, a second field made only of
    r/w/m letters is the permissions, not a path.
    """
    parts = spec.split(":")
    if not 1 <= len(parts) <= 3 or not parts[0]:
        raise UsageError(f"invalid device specification: {spec!r}",
                         hint="use --device /dev/HOST[:/dev/CONTAINER[:rwm]]")
    host, container, perms = parts[0], "", "rwm"
    if len(parts) == 3:
        container, perms = parts[1], parts[2]
    elif len(parts) == 2:
        if _valid_device_mode(parts[1]):
            perms = parts[1]
        else:
            container = parts[1]
    container = container or host
    if not _valid_device_mode(perms):
        raise UsageError(f"invalid device mode {perms!r} in {spec!r}",
                         hint="use a combination of r (read), w (write) and m (mknod)")
    for path in (host, container):
        if not path.startswith("/"):
            raise UsageError(f"device path {path!r} in {spec!r} is not absolute")
    return {"PathOnHost": host, "PathInContainer": container, "CgroupPermissions": perms}


def _valid_device_mode(mode: str) -> bool:
    return bool(mode) and set(mode) <= set("rwm") and len(set(mode)) == len(mode)


def device_from_path(path: str, container_path: str | None = None) -> dict[str, Any]:
    """The OCI ``linux.devices`` entry for the host device node at ``path`` (reads the host)."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise UsageError(f"error gathering device information while adding custom device "
                         f"{path!r}: {e.strerror.lower() if e.strerror else e}") from None
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        raise UsageError(f"{path!r} is not a device node")
    return {"path": container_path or path, "type": kind, "major": os.major(st.st_rdev),
            "minor": os.minor(st.st_rdev), "fileMode": stat.S_IMODE(st.st_mode),
            "uid": st.st_uid, "gid": st.st_gid}


#: Below /dev, what a privileged container does not take from the host (as runc).
_HOST_DEV_SKIP = frozenset({"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"})


def host_devices(root: str = "/dev") -> list[dict[str, Any]]:
    """Every device node below ``root`` (reads the host), for ``--privileged``.

    Skips what the container makes itself (pts, shm, mqueue, console) and
    symlinks, as runc's ``HostDevices`` does.
    """
    found: list[dict[str, Any]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _HOST_DEV_SKIP)
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if name == "console" or os.path.islink(path):
                continue
            try:
                found.append(device_from_path(path))
            except UsageError:
                continue  # not a device node, or gone meanwhile
    return found


def device_config(opts: ContainerOptions, host_device_list: Sequence[Mapping[str, Any]] | None
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """linux.devices and the device cgroup rules."""
    devices = [dict(d) for d in DEFAULT_DEVICES]
    if opts.privileged:
        host = host_devices() if host_device_list is None else host_device_list
        devices = _unique_devices(devices + [dict(d) for d in host])
        rules: list[dict[str, Any]] = [device_rule(True)]  # a privileged container may use any device
    else:
        rules = [dict(r) for r in DEFAULT_DEVICE_RULES]
    for spec in opts.devices:
        wanted = parse_device(spec)
        for device in _devices_below(wanted["PathOnHost"], wanted["PathInContainer"]):
            devices = _unique_devices(devices + [device])
            if not opts.privileged:
                rules.append(device_rule(True, device["type"], device["major"], device["minor"],
                                         wanted["CgroupPermissions"]))
    return devices, rules


def _devices_below(host: str, container: str) -> list[dict[str, Any]]:
    """One device, or every device in a directory (``--device /dev/snd``), as Docker."""
    if not os.path.isdir(host):
        return [device_from_path(host, container)]
    found = []
    for device in host_devices(host):
        relative = os.path.relpath(device["path"], host)
        found.append({**device, "path": os.path.join(container, relative)})
    return found


def _unique_devices(devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last entry for each container path wins."""
    by_path = {d["path"]: d for d in devices}
    return list(by_path.values())
