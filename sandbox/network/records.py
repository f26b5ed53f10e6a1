"""The network records the supervisor keeps, and the state every part of the manager shares.

:class:`NetworkRecords` is the bottom of :class:`~sandbox.network.manager.NetworkManager`:
it holds the store of records (read once: only the supervisor writes them),
the table of attachments, the pools and the bridges known to be up, and
answers "which network is this" and "which subnets are taken".  The parts
above it (:mod:`.bridges`, :mod:`.wiring`, the verbs in :mod:`.manager`)
are one object split by topic; each uses only the parts below it.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterable

from ..errors import NetworkError
from . import addresses, firewall, rtnl
from .endpoints import Attachment
from .netstore import PREDEFINED, NetworkStore, Settings, new_id, new_record

#: The mark on our bridges (IFLA_IFALIAS): which store owns them.
ALIAS_PREFIX = "sandbox store "


class NetworkRecords:
    """Records, settings and the shared state of the store's networks (see the module docstring)."""

    def __init__(self, root: Path, loop: Any, records: Callable[[], Iterable[dict[str, Any]]],
                 event: Callable[..., None] | None = None) -> None:
        self.root = root
        self.loop = loop
        self.records = records          # the containers' records (the supervisor's boxes)
        self.event = event or (lambda *a, **k: None)
        self.store = NetworkStore(root)
        self.settings = Settings(root)
        self.table = firewall.table_name(str(root))
        self.alias = ALIAS_PREFIX + str(root)
        self.attachments: dict[str, Attachment] = {}
        self._pools: dict[str, addresses.Pool] = {}
        #: bridges known to be up in this supervisor's life: name -> interface index
        self._up: dict[str, int] = {}
        self._records: dict[str, dict[str, Any]] | None = None

    def networks(self) -> list[dict[str, Any]]:
        """Every network record (read once: only we write them), the predefined three made on first use."""
        if self._records is None:
            self._records = {r["Id"]: r for r in self.store.all()}
            names = {r["Name"] for r in self._records.values()}
            for name in PREDEFINED:
                if name not in names:
                    rec = self._new_default_bridge() if name == "bridge" else \
                        new_record(new_id(), name, "host" if name == "host" else "null")
                    self._save(rec)
        return list(self._records.values())

    def _save(self, rec: dict[str, Any]) -> None:
        self.store.save(rec)
        if self._records is not None:
            self._records[rec["Id"]] = rec

    def _new_default_bridge(self) -> dict[str, Any]:
        if self.settings.bip:
            iface = ipaddress.ip_interface(self.settings.bip)
            subnet, gateway, auto = str(iface.network), str(iface.ip), False
        else:
            net = addresses.choose_subnet(self.settings.pools, self._in_use().values())
            subnet, gateway, auto = str(net), str(net.network_address + 1), True
        rec = new_record(new_id(), "bridge", "bridge", subnet=subnet, gateway=gateway,
                         bridge=self._free_bridge_name(self.settings.bridge_name), default=True)
        rec["Sandbox"]["AutoSubnet"] = auto
        return rec

    def _free_bridge_name(self, wanted: str) -> str:
        """``sandbox0``, or ``sandbox1``... when another store's bridge has the name."""
        links = rtnl.links()
        stem = wanted.rstrip("0123456789") or wanted
        candidates = [wanted] + [f"{stem}{i}" for i in range(1, 100)]
        for name in candidates:
            link = links.get(name)
            if link is None or link["alias"] == self.alias:
                return name
        raise NetworkError(f"no free bridge name like {wanted}", hint="set \"bridge-name\" in settings.json")

    def find(self, ref: str) -> dict[str, Any]:
        return self.store.find(ref, self.networks())

    def _in_use(self, skip: str | None = None) -> dict[str, ipaddress.IPv4Network]:
        """Prefixes a new subnet must avoid: the host's routes and addresses, and our other networks."""
        out = {k: v for k, v in rtnl.host_networks().items()}
        for rec in (self._records or {}).values():
            if rec["Id"] == skip:
                continue
            for cfg in rec["IPAM"]["Config"]:
                out[f"network {rec['Name']}"] = ipaddress.IPv4Network(cfg["Subnet"])
        return out

    def _name_of(self, cid: str) -> str:
        for r in self.records():
            if r["Id"] == cid:
                return str(r.get("Name", "")).lstrip("/")
        return cid[:12]

