"""The device cgroup list a container really gets: the spec's rules, then runc's.

runc (libcontainer/specconv ``AllowedDevices``) appends a fixed list after
``linux.resources.devices``: mknod of any character or block device, the
six default devices (/dev/null, zero, full, random, urandom, tty), the pty
slaves (c 136:*) and /dev/ptmx (c 5:2).  Bundles are written for that
behaviour: ``runc spec`` and every OCI tool start the list with a deny-all
(``{"allow": false, "access": "rwm"}``) and rely on runc to open the defaults
again.  Applying the spec's list alone denies mknod of /dev/null, so the
container could not even be set up.

As in runc, a default whose path the spec lists in ``linux.devices`` is left
out (the spec's entry takes its place), and a ``linux.devices`` entry gets no
rule of its own: the spec's rules decide whether it may be opened.  A node the
rules shut out is still made, as runc makes it, and :func:`shut_out` says so
in a warning naming the field instead of letting the first open fail silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..cgroups.devices import DeviceRule, device_allowed
from ..errors import InvalidResources
from .rootfs import DEFAULT_DEVICES


def _rule(kind: str, major: int | None, minor: int | None, access: str) -> dict[str, Any]:
    rule: dict[str, Any] = {"allow": True, "type": kind, "access": access}
    if major is not None:
        rule["major"] = major
    if minor is not None:
        rule["minor"] = minor
    return rule


def runtime_rules(devices: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """runc's appended rules, minus the defaults whose path ``devices`` lists."""
    listed = {d.get("path") for d in devices}
    out = [_rule("c", None, None, "m"), _rule("b", None, None, "m")]
    out += [_rule("c", major, minor, "rwm")
            for path, major, minor in _RUNC_ORDER if path not in listed]
    out += [_rule("c", 136, None, "rwm"), _rule("c", 5, 2, "rwm")]
    return out


def cgroup_rules(spec_rules: Sequence[Mapping[str, Any]] | None,
                 devices: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """The list to apply: ``linux.resources.devices`` followed by runc's rules."""
    return [dict(r) for r in spec_rules or ()] + runtime_rules(devices or ())


def shut_out(rules: Sequence[Mapping[str, Any] | DeviceRule], devices: Sequence[Mapping[str, Any]]) -> list[str]:
    """Warnings for ``linux.devices`` entries that ``rules`` (the full list) deny."""
    out = []
    for i, device in enumerate(devices):
        kind = {"u": "c"}.get(device.get("type", ""), device.get("type", ""))
        if kind not in ("b", "c"):
            continue
        try:
            allowed = device_allowed(rules, kind, device["major"], device["minor"], "rw")
        except (InvalidResources, KeyError, TypeError):
            continue        # a bad list is refused when it is applied, with its field
        if not allowed:
            out.append(f"linux.devices[{i}]: {device.get('path')} ({kind} {device['major']}:"
                       f"{device['minor']}) is created but linux.resources.devices denies "
                       f"opening it (as under runc); add an allow rule for it to use it")
    return out


#: runc's order of the six defaults (the container's /dev is made from DEFAULT_DEVICES).
_RUNC_ORDER = tuple(sorted(DEFAULT_DEVICES, key=lambda d: ("/dev/null", "/dev/random", "/dev/full",
                                                            "/dev/tty", "/dev/zero",
                                                            "/dev/urandom").index(d[0])))
