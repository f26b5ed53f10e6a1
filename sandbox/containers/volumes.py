"""Named volumes: ``$SANDBOX_ROOT/volumes/<name>/_data`` plus ``volume.json``.

A volume is a directory that outlives containers; Docker's ``local`` driver
without options is exactly that.  A new, empty volume mounted where the image
already has files gets a copy of them at the container's first start, as
Docker does ("volume copy-up"), which is why ``volume.json`` remembers whether
that happened.  Anonymous volumes (``-v /data``, ``VOLUME`` in a Dockerfile)
get a random 64-hex name and go away with ``rm -v`` or ``--rm``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import re
import builtins
import shutil
from pathlib import Path
from typing import Any

from ..errors import Conflict, UsageError, VolumeNotFound
from ..image import fsutil
from .records import ContainerStore, write_json

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


class VolumeStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.dir = self.root / "volumes"
        self.lock = fsutil.FileLock(self.root / "locks" / "volumes.lock")

    def path(self, name: str) -> Path:
        return self.dir / name

    def mountpoint(self, name: str) -> Path:
        return self.dir / name / "_data"

    def create(self, name: str | None = None, *, labels: dict[str, str] | None = None,
               driver: str = "local", driver_opts: dict[str, str] | None = None,
               anonymous: bool = False, creator: str = "") -> dict[str, Any]:
        """Make a volume (or return the existing one of that name, as docker does).

        ``creator``: the id of the container whose create makes this anonymous
        volume, kept so that a create the supervisor was killed in can be
        undone with its volumes (:meth:`made_for`).
        """
        if driver != "local":
            raise UsageError(f"volume driver {driver!r} is not available", hint="use the local driver")
        if driver_opts:
            raise UsageError("the local driver takes no options here",
                             hint="a plain volume is a directory in the store")
        name = name or fsutil.random_hex(32)
        if not NAME_RE.match(name):
            raise UsageError(f'"{name}" includes invalid characters for a local volume name, '
                             "only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed",
                             hint="pick a name of letters, digits, _ . and -")
        self.dir.mkdir(parents=True, exist_ok=True)
        with self.lock.hold():
            with contextlib.suppress(VolumeNotFound):
                return self.get(name)
            (self.path(name) / "_data").mkdir(parents=True, exist_ok=True)
            meta = {"Name": name, "Driver": "local", "Mountpoint": str(self.mountpoint(name)),
                    "CreatedAt": _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds"),
                    "Labels": dict(labels or {}), "Options": {}, "Scope": "local",
                    "Anonymous": anonymous, "CopiedUp": False}
            if anonymous and creator:
                meta["Creator"] = creator
            write_json(self.path(name) / "volume.json", meta, durable=True)
            return self.inspect_dict(meta)

    @staticmethod
    def inspect_dict(meta: dict[str, Any]) -> dict[str, Any]:
        return {k: meta[k] for k in ("CreatedAt", "Driver", "Labels", "Mountpoint", "Name",
                                     "Options", "Scope")}

    def _meta(self, name: str) -> dict[str, Any]:
        try:
            with open(self.path(name) / "volume.json", "rb") as f:
                meta: dict[str, Any] = json.loads(f.read())
                return meta
        except (FileNotFoundError, NotADirectoryError, ValueError):
            raise VolumeNotFound(f"no such volume: {name}", hint="`sandbox volume ls` lists them") from None

    def get(self, name: str) -> dict[str, Any]:
        return self.inspect_dict(self._meta(name))

    def is_anonymous(self, name: str) -> bool:
        with contextlib.suppress(VolumeNotFound):
            return bool(self._meta(name).get("Anonymous"))
        return False

    def copy_up_once(self, name: str, source: str) -> None:
        """Copy the image's files at the mount point into a new, empty volume, once."""
        meta = self._meta(name)
        if meta.get("CopiedUp"):
            return
        data = self.mountpoint(name)
        if os.path.isdir(source) and not any(os.scandir(data)):
            shutil.copytree(source, data, symlinks=True, dirs_exist_ok=True)
            st = os.stat(source)
            os.chown(data, st.st_uid, st.st_gid)
            os.chmod(data, st.st_mode & 0o7777)
        meta["CopiedUp"] = True
        write_json(self.path(name) / "volume.json", meta)

    def remove_leftovers(self) -> None:
        """Delete the ``.removing-*`` directories of removals killed half-way (already no volume)."""
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.dir):
                if entry.name.startswith(".removing-"):
                    shutil.rmtree(entry.path, ignore_errors=True)

    def made_for(self, container_id: str) -> list[str]:
        """The anonymous volumes made by the create of ``container_id``."""
        out = []
        for name in self.names():
            with contextlib.suppress(VolumeNotFound):
                if self._meta(name).get("Creator") == container_id:
                    out.append(name)
        return out

    def names(self) -> list[str]:
        try:
            # not ".removing-*": a volume half-way through its removal is no volume any more
            return sorted(e.name for e in os.scandir(self.dir)
                          if not e.name.startswith(".") and (Path(e.path) / "volume.json").exists())
        except FileNotFoundError:
            return []

    def list(self, filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        out = []
        used = self.in_use()
        for name in self.names():
            with contextlib.suppress(VolumeNotFound):
                meta = self._meta(name)
                if filters and not _matches(meta, filters, name in used):
                    continue
                out.append(self.inspect_dict(meta))
        return out

    def in_use(self) -> dict[str, builtins.list[str]]:
        """volume name -> ids of containers (any state) that mount it."""
        users: dict[str, builtins.list[str]] = {}
        for rec in ContainerStore(self.root).all():
            for m in rec.get("Mounts") or []:
                if m.get("Type") == "volume":
                    users.setdefault(m["Name"], []).append(rec["Id"])
        return users

    def remove(self, name: str, force: bool = False) -> None:
        with self.lock.hold():
            self._meta(name)
            users = self.in_use().get(name)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]",
                               hint="remove the containers that use it first (`sandbox rm`)")
            doomed = self.path(name).with_name(f".removing-{name}-{fsutil.random_hex(4)}")
            os.rename(self.path(name), doomed)
            shutil.rmtree(doomed, ignore_errors=True)

    def prune(self, all: bool = False) -> dict[str, Any]:
        """Remove unused volumes: anonymous ones only, unless ``all`` (docker 23+)."""
        removed, space = [], 0
        used = self.in_use()
        for name in self.names():
            if name in used:
                continue
            meta = self._meta(name)
            if not all and not meta.get("Anonymous"):
                continue
            space += disk_usage(self.path(name))
            with contextlib.suppress(VolumeNotFound, Conflict):
                self.remove(name)
                removed.append(name)
        return {"VolumesDeleted": removed, "SpaceReclaimed": space}

    def size(self, name: str) -> int:
        return disk_usage(self.mountpoint(name))


def _matches(meta: dict[str, Any], filters: dict[str, list[str]], used: bool) -> bool:
    for key, values in filters.items():
        if key == "name" and not any(v in meta["Name"] for v in values):
            return False
        if key == "dangling" and not any((v.lower() in ("1", "true")) != used for v in values):
            return False
        if key == "label":
            for v in values:
                k, _, val = v.partition("=")
                if k not in meta["Labels"] or (val and meta["Labels"][k] != val):
                    return False
    return True


def disk_usage(path: Path) -> int:
    """Bytes the files below ``path`` take on disk (what `du` counts: allocated blocks)."""
    total = 0
    for dirpath, _dirnames, filenames in os.walk(path):
        for f in filenames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
    return total
