"""A container's binds, volumes and tmpfs mounts: docker's "Mounts" at create, OCI mounts at start.

At create, :func:`mounts_for` turns ``-v``, ``--mount`` and the image's
``VOLUME`` entries into ``docker inspect``'s ``Mounts`` list, making named
and anonymous volumes that do not exist yet (the caller removes them again
if the create fails).  At every start, :func:`oci_mounts` turns that list
into the spec's mounts, copying a new volume's content from the image first
(Docker's copy-up, once per volume).
"""

from __future__ import annotations

import os
from typing import Any

from ..containers.volumes import VolumeStore
from ..errors import UsageError
from ..runtime.paths import secure_join


def oci_mounts(rec: dict[str, Any], rootfs: str, volumes: VolumeStore) -> list[dict[str, Any]]:
    """OCI mounts for the record's binds, volumes and --mount tmpfs entries."""
    out = []
    for m in rec.get("Mounts") or []:
        options = ["rbind", "rw" if m.get("RW", True) else "ro"]
        if m.get("Propagation"):
            options.append(m["Propagation"])
        if m["Type"] == "bind":
            out.append({"destination": m["Destination"], "type": "bind", "source": m["Source"],
                        "options": options})
        elif m["Type"] == "volume":
            volumes.copy_up_once(m["Name"], secure_join(rootfs, m["Destination"]))
            out.append({"destination": m["Destination"], "type": "bind",
                        "source": str(volumes.mountpoint(m["Name"])), "options": options})
        elif m["Type"] == "tmpfs":
            topts = ["rw" if m.get("RW", True) else "ro", "nosuid", "nodev", "noexec"]
            if m.get("SizeBytes"):
                topts.append(f"size={m['SizeBytes']}")
            if m.get("ModeOctal"):
                topts.append(f"mode={m['ModeOctal']}")
            out.append({"destination": m["Destination"], "type": "tmpfs", "source": "tmpfs",
                        "options": topts})
    return out


def _missing_source(src: str) -> UsageError:
    return UsageError(f'invalid mount config for type "bind": bind source path does not exist: {src}',
                      hint="create the host directory first, or check the spelling")


class _Mounts:
    """The list being built, with docker's checks on each destination."""

    def __init__(self, volumes: VolumeStore, made: list[str], creator: str) -> None:
        self.volumes, self.made, self.creator = volumes, made, creator
        self.items: list[dict[str, Any]] = []
        self.seen: set[str] = set()

    def add(self, m: dict[str, Any]) -> None:
        dest = os.path.normpath(m["Destination"])
        if not dest.startswith("/"):
            raise UsageError(f"invalid mount config: mount path must be absolute: {dest}")
        if dest in self.seen:
            raise UsageError(f"Duplicate mount point: {dest}",
                             hint="each container path can only be mounted once")
        self.seen.add(dest)
        m["Destination"] = dest
        self.items.append(m)

    def volume(self, name: str | None, dest: str, rw: bool) -> None:
        if name and (self.volumes.path(name) / "volume.json").exists():
            meta = self.volumes.get(name)
        else:
            meta = self.volumes.create(name, anonymous=not name, creator=self.creator)
            self.made.append(meta["Name"])
        self.add({"Type": "volume", "Name": meta["Name"], "Source": meta["Mountpoint"],
                  "Destination": dest, "Driver": "local", "Mode": "z" if rw else "ro", "RW": rw,
                  "Propagation": ""})

    def bind_string(self, bind: str) -> None:
        """``-v SRC:DEST[:OPTS]``: a host path is a bind, a name is a volume."""
        parts = bind.split(":")
        src, dest = parts[0], parts[1]
        opts = parts[2].split(",") if len(parts) > 2 else []
        rw = "ro" not in opts
        if not src.startswith("/"):
            self.volume(src, dest, rw)
            return
        if not os.path.exists(src):
            raise _missing_source(src)
        prop = next((o for o in opts if o in ("private", "rprivate", "shared", "rshared",
                                              "slave", "rslave")), "rprivate")
        self.add({"Type": "bind", "Source": src, "Destination": dest, "Mode": ",".join(opts),
                  "RW": rw, "Propagation": prop})

    def mount_entry(self, m: dict[str, Any]) -> None:
        """``--mount type=...``: HostConfig.Mounts as docker's API spells it."""
        kind = m.get("Type", "volume")
        rw = not m.get("ReadOnly")
        if kind == "bind":
            src = m.get("Source") or ""
            if not os.path.exists(src):
                raise _missing_source(src)
            self.add({"Type": "bind", "Source": src, "Destination": m["Target"], "Mode": "", "RW": rw,
                      "Propagation": (m.get("BindOptions") or {}).get("Propagation") or "rprivate"})
        elif kind == "volume":
            self.volume(m.get("Source") or None, m["Target"], rw)
        elif kind == "tmpfs":
            topts = m.get("TmpfsOptions") or {}
            mode = topts.get("Mode")
            self.add({"Type": "tmpfs", "Source": "", "Destination": m["Target"], "Mode": "", "RW": rw,
                      "Propagation": "", "SizeBytes": topts.get("SizeBytes"),
                      "ModeOctal": format(mode, "o") if isinstance(mode, int) else mode})
        else:
            raise UsageError(f"mount type {kind!r} is not supported", hint="use bind, volume or tmpfs")


def mounts_for(volumes: VolumeStore, config: dict[str, Any], host: dict[str, Any],
               made: list[str], creator: str = "") -> list[dict[str, Any]]:
    """docker inspect's "Mounts" from -v, --mount and the image's VOLUMEs; volumes made now go in ``made``.

    ``creator`` is the id of the container being created (see VolumeStore.create).
    """
    mounts = _Mounts(volumes, made, creator)
    for bind in host.get("Binds") or []:
        mounts.bind_string(bind)
    for m in host.get("Mounts") or []:
        mounts.mount_entry(m)
    for dest in (config.get("Volumes") or {}):
        if os.path.normpath(dest) not in mounts.seen and os.path.normpath(dest) not in (host.get("Tmpfs") or {}):
            mounts.volume(None, dest, True)
    return mounts.items
