"""Networks: list, inspect, create, remove, connect, disconnect, prune (requests to the supervisor)."""

from __future__ import annotations

from typing import Any

from ...errors import NetworkNotFound
from ..http import ApiError, Exchange
from ..router import Router
from ..shapes import filters


def _network(d: Any, ref: str) -> Any:
    try:
        return d.engine.networks.get(ref)
    except NetworkNotFound:
        raise ApiError(404, f"network {ref} not found") from None


def list_networks(d: Any, ex: Exchange) -> None:
    wanted = filters(ex.arg("filters"))
    nets = d.engine.networks.list()
    for key, values in wanted.items():
        if key == "name":
            nets = [n for n in nets if any(v in n.name for v in values)]
        elif key == "id":
            nets = [n for n in nets if any(n.id.startswith(v) for v in values)]
        elif key == "driver":
            nets = [n for n in nets if n.attrs["Driver"] in values]
        elif key == "type":
            builtin = ("bridge", "host", "none")
            nets = [n for n in nets if any((v == "builtin") == (n.name in builtin) for v in values)]
        elif key == "label":
            def has(n: Any, v: str) -> bool:
                k, sep, val = v.partition("=")
                labels = n.attrs.get("Labels") or {}
                return k in labels and (not sep or labels[k] == val)
            nets = [n for n in nets if all(has(n, v) for v in values)]
        elif key == "dangling":
            want = values[0].lower() in ("true", "1")
            nets = [n for n in nets if (not n.attrs.get("Containers") and n.name not in ("bridge", "host", "none"))
                    == want]
        elif key != "scope":
            raise ApiError(400, f"invalid filter '{key}'")
    ex.json([n.attrs for n in nets])


def inspect(d: Any, ex: Exchange, id: str) -> None:
    ex.json(_network(d, id).attrs)


def create(d: Any, ex: Exchange) -> None:
    body = ex.json_body({}) or {}
    name = body.get("Name")
    if not name:
        raise ApiError(400, "network create: Name is required")
    ipam = (body.get("IPAM") or {}).get("Config") or []
    pool = ipam[0] if ipam else {}
    net = d.engine.networks.create(name, driver=body.get("Driver") or "bridge", internal=bool(body.get("Internal")),
                                   labels=body.get("Labels") or {}, subnet=pool.get("Subnet") or None,
                                   gateway=pool.get("Gateway") or None)
    ex.json({"Id": net.id, "Warning": ""}, status=201)


def remove(d: Any, ex: Exchange, id: str) -> None:
    _network(d, id).remove()
    ex.empty(204)


def connect(d: Any, ex: Exchange, id: str) -> None:
    body = ex.json_body({}) or {}
    ec = body.get("EndpointConfig") or {}
    if not body.get("Container"):
        raise ApiError(400, "network connect: Container is required")
    _network(d, id).connect(body["Container"], aliases=ec.get("Aliases") or [],
                            ipv4_address=(ec.get("IPAMConfig") or {}).get("IPv4Address") or None)
    ex.empty(200)


def disconnect(d: Any, ex: Exchange, id: str) -> None:
    body = ex.json_body({}) or {}
    if not body.get("Container"):
        raise ApiError(400, "network disconnect: Container is required")
    _network(d, id).disconnect(body["Container"], force=bool(body.get("Force")))
    ex.empty(200)


def prune(d: Any, ex: Exchange) -> None:
    wanted = filters(ex.arg("filters"))
    ex.json(d.engine.networks.prune(filters={"label": wanted.get("label", [])}))


def register(r: Router) -> None:
    r.add("GET", "/networks", list_networks)
    r.add("POST", "/networks/create", create)
    r.add("POST", "/networks/prune", prune)
    r.add("GET", "/networks/{id}", inspect)
    r.add("DELETE", "/networks/{id}", remove)
    r.add("POST", "/networks/{id}/connect", connect)
    r.add("POST", "/networks/{id}/disconnect", disconnect)
