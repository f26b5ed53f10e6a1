"""Bridges, IPv4 forwarding and the store's firewall table: brought up on demand, taken away when idle.

A network's bridge exists only while some container uses it, and the
nftables table is rebuilt from what runs now, never edited in place, so
there is no state here that could drift from the containers' records.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from typing import Any

from ..errors import NetworkError, SandboxError
from . import addresses, firewall, rtnl
from .records import ALIAS_PREFIX, NetworkRecords

#: Where the host's ip_forward setting is kept while our bridges need forwarding on.
FORWARD_SAVED = "/run/sandbox/ip_forward.saved"
IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"


class Bridges(NetworkRecords):
    """The bridge side of :class:`~sandbox.network.manager.NetworkManager`: pools, bridges, forwarding, firewall."""

    def _pool(self, rec: dict[str, Any]) -> addresses.Pool:
        pool = self._pools.get(rec["Id"])
        if pool is None:
            cfg = rec["IPAM"]["Config"][0]
            pool = addresses.Pool(ipaddress.IPv4Network(cfg["Subnet"]), ipaddress.IPv4Address(cfg["Gateway"]), {})
            for att in self.attachments.values():
                ep = att.endpoints.get(rec["Id"])
                if ep is not None:
                    pool.taken[ep.address] = ep.endpoint_id
            self._pools[rec["Id"]] = pool
        return pool

    def _bridge_up(self, rec: dict[str, Any]) -> dict[str, Any]:
        """Make sure the network's bridge exists, is ours and is up; the (maybe updated) record."""
        bridge = rec["Sandbox"]["Bridge"]
        if bridge in self._up:
            return rec
        cfg = rec["IPAM"]["Config"][0]
        links = rtnl.links()
        link = links.get(bridge)
        clash = self._clash(rec, links)
        if (link is not None and link["alias"] != self.alias) or clash:
            if rec["Name"] == "bridge" and rec["Sandbox"].get("AutoSubnet") and not self._in_use_by(rec):
                fresh = self._new_default_bridge()       # another store took our name or subnet
                fresh["Id"], fresh["Created"] = rec["Id"], rec["Created"]
                self._save(fresh)
                self._pools.pop(rec["Id"], None)
                return self._bridge_up(fresh)
            what = f"interface {bridge} belongs to something else" if not clash else \
                f"its subnet {cfg['Subnet']} overlaps {clash}"
            raise NetworkError(f"cannot bring up network {rec['Name']}: {what}",
                               hint="remove the other interface, or re-create this network with another --subnet")
        prefix = ipaddress.IPv4Network(cfg["Subnet"]).prefixlen
        self._forwarding_on()
        self._up[bridge] = rtnl.ensure_bridge(bridge, cfg["Gateway"], prefix, self.alias)
        self._firewall()    # its NAT and isolation rules
        return rec

    def _clash(self, rec: dict[str, Any], links: dict[str, dict[str, Any]]) -> str | None:
        """What on the host overlaps the network's subnet (other than its own bridge)."""
        net = ipaddress.IPv4Network(rec["IPAM"]["Config"][0]["Subnet"])
        bridge = rec["Sandbox"]["Bridge"]
        for what, other in rtnl.host_networks().items():
            if other.overlaps(net) and not what.endswith(f" {bridge}") and not what.endswith(f"dev {bridge}"):
                return what
        return None

    def _in_use_by(self, rec: dict[str, Any]) -> bool:
        return any(rec["Id"] in a.endpoints for a in self.attachments.values())

    def _bridge_down(self, rec: dict[str, Any]) -> None:
        bridge = rec["Sandbox"].get("Bridge")
        if not bridge:
            return
        links = rtnl.links()
        if bridge in links and links[bridge]["alias"] == self.alias:
            rtnl.delete_link(bridge)
        self._up.pop(bridge, None)

    def _forwarding_on(self) -> None:
        """Turn on IPv4 forwarding (outbound NAT needs it on every interface a reply may come in by).

        Per-interface forwarding cannot do: the kernel checks the interface a
        packet arrived on, and replies arrive on the uplink.  So, as Docker
        and Podman do, the global switch; the host's own value is kept in
        /run and put back when the last of our bridges goes.
        """
        if rtnl.read_sysctl(IP_FORWARD) == "1":
            return
        os.makedirs(os.path.dirname(FORWARD_SAVED), exist_ok=True)
        if not os.path.exists(FORWARD_SAVED):
            with open(FORWARD_SAVED, "w") as f:
                f.write("0\n")
        rtnl.write_sysctl(IP_FORWARD, "1")

    def _forwarding_restore(self) -> None:
        """Put the host's ip_forward back once no store's bridge is left."""
        if not os.path.exists(FORWARD_SAVED):
            return
        if any(link["alias"].startswith(ALIAS_PREFIX) for link in rtnl.links().values()):
            return
        with open(FORWARD_SAVED) as f:
            value = f.read().strip() or "0"
        rtnl.write_sysctl(IP_FORWARD, value)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(FORWARD_SAVED)

    def _firewall(self) -> None:
        """Rebuild the store's nftables table from what runs now (or remove it when nothing does)."""
        bridges, forwards = [], []
        for rec in self.networks():
            if rec["Driver"] == "bridge" and rec["Sandbox"]["Bridge"] in self._up:
                bridges.append(firewall.Bridge(rec["Sandbox"]["Bridge"], rec["IPAM"]["Config"][0]["Subnet"],
                                               bool(rec.get("Internal"))))
        for att in self.attachments.values():
            forwards.extend(att.forwards)
        firewall.apply(self.table, bridges, forwards)

    def idle(self) -> None:
        """Nothing runs on our networks: take the bridges and the table away (they come back on demand)."""
        if any(a.endpoints for a in self.attachments.values()):
            return
        for rec in self.networks():
            if rec["Driver"] == "bridge":
                with contextlib.suppress(SandboxError, OSError):
                    self._bridge_down(rec)
        with contextlib.suppress(SandboxError, OSError):
            firewall.remove(self.table)
        with contextlib.suppress(SandboxError, OSError):
            self._forwarding_restore()
