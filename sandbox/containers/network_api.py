"""``engine.networks``: docker-py's network API, served by the store's supervisor.

The supervisor owns networks (their bridges, rules and name server must
outlive any client), so each call here is one request to it; ``attrs`` is
``docker network inspect``'s document, with the live ``Containers`` section.
"""

from __future__ import annotations

import builtins
from typing import Any


class Network:
    def __init__(self, collection: NetworkCollection, attrs: dict[str, Any]) -> None:
        self.collection, self.attrs = collection, attrs

    @property
    def id(self) -> str:
        return str(self.attrs["Id"])

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def name(self) -> str:
        return str(self.attrs["Name"])

    @property
    def containers(self) -> builtins.list[Any]:
        """The containers connected now (docker-py's ``Network.containers``)."""
        return [self.collection.engine.containers.get(cid) for cid in (self.attrs.get("Containers") or {})]

    def reload(self) -> Network:
        self.attrs = self.collection.call("network_inspect", id=self.id)
        return self

    def connect(self, container: Any, aliases: builtins.list[str] | None = None,
                ipv4_address: str | None = None, **_: Any) -> None:
        """Connect ``container`` (an object, a name or an id); at once when it runs."""
        self.collection.call("network_connect", network=self.id, container=_ref(container),
                             aliases=list(aliases or []), ip=ipv4_address)

    def disconnect(self, container: Any, force: bool = False) -> None:
        self.collection.call("network_disconnect", network=self.id, container=_ref(container), force=force)

    def remove(self) -> None:
        self.collection.call("network_remove", id=self.id)

    def __repr__(self) -> str:
        return f"<Network: {self.short_id} {self.name}>"


def _ref(container: Any) -> str:
    return str(getattr(container, "id", container))


class NetworkCollection:
    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def call(self, op: str, **args: Any) -> Any:
        return self.engine.supervisor.call(op, **args)

    def create(self, name: str, driver: str | None = None, options: dict[str, str] | None = None,
               ipam: Any = None, internal: bool = False, labels: dict[str, str] | None = None,
               subnet: str | None = None, gateway: str | None = None, **_: Any) -> Network:
        """``docker network create``; ``ipam`` as docker-py's IPAMConfig or the API's dict."""
        if ipam is not None and not subnet:
            pools = ipam.get("Config") if isinstance(ipam, dict) else getattr(ipam, "pool_configs", None)
            for pool in pools or []:
                subnet = pool.get("Subnet") or pool.get("subnet")
                gateway = gateway or pool.get("Gateway") or pool.get("gateway")
                break
        created = self.call("network_create", name=name, driver=driver or "bridge", subnet=subnet,
                            gateway=gateway, internal=internal, labels=labels or {})
        return self.get(created["Id"])

    def get(self, network_id: str) -> Network:
        return Network(self, self.call("network_inspect", id=network_id))

    def list(self, names: builtins.list[str] | None = None, ids: builtins.list[str] | None = None,
             filters: dict[str, Any] | None = None, greedy: bool = False) -> builtins.list[Network]:
        nets = [Network(self, a) for a in self.call("network_list")]
        if names:
            nets = [n for n in nets if n.name in names]
        if ids:
            nets = [n for n in nets if any(n.id.startswith(i) for i in ids)]
        for key, values in (filters or {}).items():
            vals = values if isinstance(values, (builtins.list, tuple)) else [values]
            if key == "name":
                nets = [n for n in nets if any(str(v) in n.name for v in vals)]
            elif key == "driver":
                nets = [n for n in nets if n.attrs["Driver"] in vals]
            elif key == "id":
                nets = [n for n in nets if any(n.id.startswith(str(v)) for v in vals)]
        return nets

    def prune(self, filters: dict[str, Any] | None = None) -> dict[str, Any]:
        labels = (filters or {}).get("label") or []
        return dict(self.call("network_prune", labels=list(labels) if not isinstance(labels, str) else [labels]))
