"""Volumes: list, create, inspect, remove, prune (the store's ``volumes/``, read and written here)."""

from __future__ import annotations

from typing import Any

from ...errors import VolumeNotFound
from ..http import ApiError, Exchange
from ..router import Router
from ..shapes import filters


def _volume(d: Any, name: str) -> Any:
    try:
        return d.engine.volumes.get(name)
    except VolumeNotFound:
        raise ApiError(404, f"get {name}: no such volume") from None


def list_volumes(d: Any, ex: Exchange) -> None:
    wanted = filters(ex.arg("filters"))
    ex.json({"Volumes": [v.attrs for v in d.engine.volumes.list(filters=wanted or None)], "Warnings": None})


def create(d: Any, ex: Exchange) -> None:
    body = ex.json_body({}) or {}
    v = d.engine.volumes.create(body.get("Name") or None, driver=body.get("Driver") or "local",
                                driver_opts=body.get("DriverOpts") or None, labels=body.get("Labels") or {})
    ex.json(v.attrs, status=201)


def inspect(d: Any, ex: Exchange, name: str) -> None:
    ex.json(_volume(d, name).attrs)


def remove(d: Any, ex: Exchange, name: str) -> None:
    _volume(d, name).remove(force=ex.flag("force"))
    ex.empty(204)


def prune(d: Any, ex: Exchange) -> None:
    wanted = filters(ex.arg("filters"))
    everything = (wanted.get("all") or ["false"])[0].lower() in ("true", "1")
    ex.json(d.engine.volumes.prune(all=everything))


def register(r: Router) -> None:
    r.add("GET", "/volumes", list_volumes)
    r.add("POST", "/volumes/create", create)
    r.add("POST", "/volumes/prune", prune)
    r.add("GET", "/volumes/{name}", inspect)
    r.add("DELETE", "/volumes/{name}", remove)
