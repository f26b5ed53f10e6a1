"""The supervisor's networks: records, bridges, the firewall table, and each running container's wiring.

One :class:`NetworkManager` lives in the supervisor (it owns everything that
must outlive a client).  For a container on ``bridge`` or a user network,
:meth:`~NetworkManager.attach` does the whole set-up as one unit before the
container exists: a network namespace made by the supervisor, for each
network a veth pair (host end on the network's bridge, the other end made
inside as ``eth0``, ``eth1``, ...), an address from the network's pool, the
default route, the embedded name server on user networks, the published
ports (a bound socket each, and DNAT rules), and the container's hosts and
resolv.conf.  The container's init joins that namespace by path.
:meth:`~NetworkManager.detach` undoes all of it when the container has
exited, or when a start failed half-way.

State is derived, never stored twice: which address a container has is in
its own record (written before it runs); the pools, the firewall table and
which bridges must exist are computed from the running containers.  That is
what makes recovery simple: a restarted supervisor adopts the running
containers, and everything else follows from them.  Bridges and the table
exist only while some container uses them, so an idle kit leaves nothing in
the host's network configuration.
"""

from __future__ import annotations

import contextlib
from typing import Any
from collections.abc import Iterable

from ..errors import NetworkInUse, SandboxError, UsageError
from . import addresses, firewall, rtnl
from .endpoints import Attachment, Endpoint, user_network, veth_name
from .netns import NetNS
from .netstore import PREDEFINED, new_id, new_record
from .ports import reserve, split_key
from .records import ALIAS_PREFIX  # noqa: F401 - re-exported: supervisor/adopt.py names it here
from .wiring import Wiring


class NetworkManager(Wiring):
    """The supervisor's networks, one object split by topic, each part using only those below it.

    :mod:`.records` (records, settings, the shared state) < :mod:`.bridges`
    (bridges, forwarding, firewall) < :mod:`.wiring` (a container's
    namespace, endpoints, names, ports) < this class: the ``network`` verbs
    and the recovery after a supervisor restart.
    """

    # ------------------------------------------------------------------ network verbs

    def create(self, name: str, *, driver: str = "bridge", subnet: str | None = None,
               gateway: str | None = None, internal: bool = False, labels: dict[str, str] | None = None,
               check_duplicate: bool = True) -> dict[str, Any]:
        """``network create``: a record now; its bridge comes up when a container needs it."""
        if not name or not _valid_name(name):
            raise UsageError(f"invalid network name {name!r}", hint="use letters, digits, _ . and -")
        if driver != "bridge":
            raise UsageError(f"network driver {driver!r} is not supported",
                             hint="this engine has bridge networks (plus the predefined host and none)")
        existing = self.networks()
        if any(r["Name"] == name for r in existing):
            raise UsageError(f"network with name {name} already exists", hint="pick another name, or "
                             f"`sandbox network rm {name}` first") if name not in PREDEFINED else \
                UsageError(f"{name} is a pre-defined network and cannot be created", hint="pick another name")
        in_use = self._in_use()
        if subnet:
            net = addresses.parse_subnet(subnet)
            addresses.check_free(net, in_use)
            auto = False
        else:
            if gateway:
                raise UsageError("--gateway needs --subnet", hint="give the subnet the gateway is in")
            net = addresses.choose_subnet(self.settings.pools, in_use.values())
            auto = True
        gw = addresses.gateway_of(net, gateway)
        nid = new_id()
        rec = new_record(nid, name, "bridge", subnet=str(net), gateway=str(gw), bridge="sbr-" + nid[:11],
                         internal=internal, labels=labels)
        rec["Sandbox"]["AutoSubnet"] = auto
        self._save(rec)
        self.event("network", nid, "create", {"name": name, "type": "bridge"})
        return rec

    def remove(self, ref: str) -> dict[str, Any]:
        rec = self.find(ref)
        if rec["Name"] in PREDEFINED:
            raise UsageError(f"{rec['Name']} is a pre-defined network and cannot be removed",
                             hint="only networks made with `network create` can be removed")
        users = [a for cid, a in self.attachments.items() if rec["Id"] in a.endpoints]
        if users:
            names = ", ".join(self._name_of(cid) for cid, a in self.attachments.items() if rec["Id"] in a.endpoints)
            raise NetworkInUse(f"error while removing network: network {rec['Name']} id {rec['Id']} has active "
                               f"endpoints ({names})", hint=f"stop those containers, or "
                               f"`sandbox network disconnect {rec['Name']} CONTAINER` first")
        was_up = rec["Sandbox"]["Bridge"] in self._up
        self._bridge_down(rec)
        if was_up:
            self._firewall()
            self._forwarding_restore()
        self.store.delete(rec["Id"])
        if self._records is not None:
            self._records.pop(rec["Id"], None)
        self._pools.pop(rec["Id"], None)
        self.event("network", rec["Id"], "destroy", {"name": rec["Name"], "type": rec["Driver"]})
        return rec

    def prune(self, labels: list[str] = ()) -> list[str]:  # type: ignore[assignment]
        """``network prune``: user networks no container (running or not) is connected to."""
        used: set[str] = set()
        for r in self.records():
            used.update((r.get("NetworkSettings") or {}).get("Networks") or {})
        removed = []
        for rec in self.networks():
            if rec["Name"] in PREDEFINED or rec["Name"] in used or not _labels_match(rec, labels):
                continue
            with contextlib.suppress(SandboxError):
                self.remove(rec["Id"])
                removed.append(rec["Name"])
        return removed

    def inspect(self, rec: dict[str, Any]) -> dict[str, Any]:
        """The record as ``docker network inspect`` shows it, with its live ``Containers``."""
        out = {k: v for k, v in rec.items() if k != "Sandbox"}
        containers: dict[str, Any] = {}
        for cid, att in self.attachments.items():
            ep = att.endpoints.get(rec["Id"])
            if ep is not None:
                containers[cid] = {"Name": self._name_of(cid), "EndpointID": ep.endpoint_id,
                                   "MacAddress": ep.mac, "IPv4Address": f"{ep.address}/{ep.prefixlen}",
                                   "IPv6Address": ""}
        out["Containers"] = containers
        return out

    # ------------------------------------------------------------------ after a supervisor restart

    def adopt(self, rec: dict[str, Any], pid: int) -> None:
        """A running container the last supervisor wired up: hold its namespace, serve its names again."""
        mode = rec["HostConfig"].get("NetworkMode") or "none"
        if mode.startswith("container:"):
            return
        att = Attachment(netns=NetNS.of_process(pid))
        self.attachments[rec["Id"]] = att
        for name, es in sorted((rec["NetworkSettings"].get("Networks") or {}).items()):
            if not es.get("EndpointID"):
                continue
            net = self._bridge_up(self.find(name))
            ep = Endpoint(net["Id"], net["Name"], es["EndpointID"], "", veth_name(es["EndpointID"]),
                          es["IPAddress"], int(es["IPPrefixLen"]), es["Gateway"], es.get("MacAddress") or "",
                          list(es.get("Aliases") or []))
            att.endpoints[net["Id"]] = ep
            self._pool(net).taken[ep.address] = ep.endpoint_id
        if any(user_network(self.find(e.network)) for e in att.endpoints.values()):
            with contextlib.suppress(OSError, SandboxError):
                self._start_name_server(rec["Id"], att, rec["HostConfig"])
        first = next(iter(att.endpoints.values()), None)
        for key, bound in (rec["NetworkSettings"].get("Ports") or {}).items():
            port, proto = split_key(key)
            for b in bound or []:
                with contextlib.suppress(SandboxError, OSError):
                    att.reservations.append(reserve(b["HostIp"], b["HostPort"], proto))
                if first is not None:
                    att.forwards.append(firewall.Forward(b["HostIp"], int(b["HostPort"]), proto, first.address, port))

    def recovered(self) -> None:
        """After adopting: remove what no running container needs (bridges of ours, the table), rebuild the rest."""
        needed = {self.find(e.network)["Sandbox"]["Bridge"] for a in self.attachments.values()
                  for e in a.endpoints.values()}
        for name, link in rtnl.links().items():
            if link["alias"] == self.alias and name not in needed:
                rtnl.delete_link(name)
                self._up.pop(name, None)
        if needed:
            self._firewall()
        else:
            self.idle()


def _valid_name(name: str) -> bool:
    from .netstore import NAME_RE
    return bool(NAME_RE.match(name))


def _labels_match(rec: dict[str, Any], labels: Iterable[str]) -> bool:
    mine = rec.get("Labels") or {}
    for item in labels:
        k, _, v = item.partition("=")
        if k not in mine or (v and mine[k] != v):
            return False
    return True
