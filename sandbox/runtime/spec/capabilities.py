"""Capabilities: Docker's 14 defaults, ``--cap-add``/``--cap-drop``/``--privileged``, the host's bounding set.

A capability the host's bounding set lacks is cut with a warning, never
handed out: no process can give what it cannot hold, and a container that
asked for it would otherwise fail half-made.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from ...errors import UsageError
from ...kernel import CAPS

#: Docker's 14 (moby ``oci/caps/defaults.go``), in Docker's order.
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

#: Every capability the kernel knows, index == number (<linux/capability.h>).
#: Every capability this engine knows, in kernel bit order (kept in one place: sandbox.kernel.caps).
ALL_CAPABILITIES: tuple[str, ...] = tuple(sorted(CAPS, key=CAPS.__getitem__))


def normalize_capability(name: str) -> str:
    """``net_admin``, ``NET_ADMIN`` or ``CAP_NET_ADMIN`` -> ``CAP_NET_ADMIN``; ``all`` -> ``ALL``."""
    upper = name.strip().upper()
    if upper == "ALL":
        return "ALL"
    full = upper if upper.startswith("CAP_") else "CAP_" + upper
    if full not in ALL_CAPABILITIES:
        valid = ", ".join(c[4:] for c in ALL_CAPABILITIES)
        raise UsageError(f"unknown capability: {name!r}", hint=f"valid capabilities: ALL, {valid}")
    return full


def capability_set(cap_add: Iterable[str], cap_drop: Iterable[str], privileged: bool,
                   host_bounding_set: Collection[str] | None, *,
                   warnings: list[str] | None = None) -> list[str]:
    """The container's capabilities, sorted, as Docker's ``TweakCapabilities`` computes them.

    ``--privileged`` and ``--cap-add ALL`` mean every capability the host has
    (minus ``cap_drop``); ``--cap-drop ALL`` keeps only ``cap_add``; otherwise
    the 14 defaults minus ``cap_drop`` plus ``cap_add``.  The result is cut to
    ``host_bounding_set`` (no process can hand out a capability it cannot hold);
    a capability cut that the user asked for or that Docker gives by default
    adds a sentence to ``warnings``.
    """
    adds = [normalize_capability(c) for c in cap_add]
    drops = [normalize_capability(c) for c in cap_drop]
    host = None if host_bounding_set is None else _cap_names(host_bounding_set)   # once, not per name
    available = [c for c in ALL_CAPABILITIES if host is None or c in host]
    if privileged:
        return sorted(available)
    if "ALL" in adds:
        return sorted(c for c in available if c not in drops)
    wanted = [c for c in adds if c != "ALL"] if "ALL" in drops else \
        [c for c in DEFAULT_CAPABILITIES if c not in drops] + adds
    kept = sorted({c for c in wanted if c in available})
    missing = sorted(set(wanted) - set(kept))
    if missing and warnings is not None:
        warnings.append(
            f"capabilities {', '.join(missing)} are not in this host's bounding set and were "
            f"left out (the engine itself runs without them)")
    return kept


def _cap_names(caps: Collection[str]) -> set[str]:
    return {c.upper() if c.upper().startswith("CAP_") else "CAP_" + c.upper() for c in caps}
