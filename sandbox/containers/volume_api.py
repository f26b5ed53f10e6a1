"""``engine.volumes``: docker-py's volume API over :class:`~sandbox.containers.volumes.VolumeStore`."""

from __future__ import annotations

import builtins
import os
from typing import Any

from .volumes import VolumeStore


class Volume:
    def __init__(self, store: VolumeStore, attrs: dict[str, Any]) -> None:
        self._store, self.attrs = store, attrs

    @property
    def name(self) -> str:
        return str(self.attrs["Name"])

    id = name

    def reload(self) -> Volume:
        self.attrs = self._store.get(self.name)
        return self

    def remove(self, force: bool = False) -> None:
        self._store.remove(self.name, force=force)

    def __repr__(self) -> str:
        return f"<Volume: {self.name}>"


class VolumeCollection:
    """``engine.volumes`` for the store at ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.store = VolumeStore(root)

    def create(self, name: str | None = None, driver: str = "local", driver_opts: dict[str, str] | None = None,
               labels: dict[str, str] | None = None) -> Volume:
        return Volume(self.store, self.store.create(name, labels=labels, driver=driver, driver_opts=driver_opts))

    def get(self, name: str) -> Volume:
        return Volume(self.store, self.store.get(name))

    def list(self, filters: dict[str, Any] | None = None) -> builtins.list[Volume]:
        norm = {k: [str(x) for x in v] if isinstance(v, (builtins.list, tuple)) else [str(v)]
                for k, v in (filters or {}).items()}
        return [Volume(self.store, a) for a in self.store.list(norm)]

    def prune(self, filters: dict[str, Any] | None = None, all: bool = False) -> dict[str, Any]:
        return self.store.prune(all=all)
