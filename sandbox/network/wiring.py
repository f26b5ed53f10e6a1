"""A container's wiring: its namespace, endpoints, name server, published ports, hosts and resolv.conf.

:meth:`Wiring.attach` does the whole set-up as one unit before the
container exists and :meth:`Wiring.detach` gives everything back;
``network connect``/``disconnect`` add or remove one endpoint of a running
container; :meth:`Wiring.lookup`/:meth:`Wiring.reverse` answer the embedded
name server from the same attachments.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from ..errors import PortInUse, SandboxError, UsageError
from . import addresses, etcfiles, firewall, rtnl
from .bridges import Bridges
from .dns import NameServer, host_resolvers
from .endpoints import Attachment, Endpoint, record_endpoints, user_network, veth_name
from .netns import NetNS
from .netstore import new_id
from .ports import reserve, split_key


class Wiring(Bridges):
    """The per-container side of :class:`~sandbox.network.manager.NetworkManager`."""

    def attach(self, rec: dict[str, Any]) -> str | None:
        """Wire a container up before it starts; the netns path its init joins (None: its own, or the host's).

        Updates ``rec``'s NetworkSettings and writes its hosts and
        resolv.conf.  Nothing is left if it fails.
        """
        host = rec["HostConfig"]
        mode = host.get("NetworkMode") or "none"
        cdir = Path(rec["HostsPath"]).parent
        if mode in ("none", "host"):
            self._write_etc(rec, cdir, [], embedded=False)
            return None
        if mode.startswith("container:"):
            return self._join_container(rec, cdir, mode.partition(":")[2])
        att = Attachment()
        self.attachments[rec["Id"]] = att
        try:
            att.netns = NetNS.create()
            nets = self._ordered_networks(rec)
            self._make_endpoints(rec, att, nets)
            if any(user_network(n) for n in nets):
                self._start_name_server(rec["Id"], att, host)
            self._publish(rec, att)
            if att.forwards:
                self._firewall()
        except BaseException:
            self.detach(rec)
            raise
        record_endpoints(rec, att)
        self._write_etc(rec, cdir, [ep.address for ep in att.endpoints.values()],
                        embedded=any(user_network(n) for n in nets))
        return att.netns.path

    def _ordered_networks(self, rec: dict[str, Any]) -> list[dict[str, Any]]:
        """The records of the container's networks: its network mode first (the default route's)."""
        mode = rec["HostConfig"].get("NetworkMode") or "bridge"
        names = list((rec.get("NetworkSettings") or {}).get("Networks") or {mode: {}})
        names.sort(key=lambda n: (n != mode, n))
        out = []
        for name in names:
            net = self.find(name)
            if net["Driver"] != "bridge":
                raise UsageError(f"container cannot be connected to network {name} ({net['Driver']}) "
                                 "together with others", hint="use host or none alone")
            out.append(self._bridge_up(net))
        return out

    def _make_endpoints(self, rec: dict[str, Any], att: Attachment, nets: list[dict[str, Any]]) -> None:
        assert att.netns is not None
        settings = rec["NetworkSettings"]["Networks"]
        host_nl = rtnl.Netlink()
        inner = att.netns.netlink()
        try:
            for i, net in enumerate(nets):
                es = settings.get(net["Name"]) or {}
                ep = self._new_endpoint(rec, net, es, f"eth{i}")
                att.endpoints[net["Id"]] = ep
                rtnl.queue_veth(host_nl, ep.veth, self._up[net["Sandbox"]["Bridge"]], ep.ifname,
                                att.netns.fd, ep.mac)
            host_nl.commit()
            for i, ep in enumerate(att.endpoints.values()):
                index = inner.link_index(ep.ifname)
                rtnl.queue_address(inner, index, ep.ifname, ep.address, ep.prefixlen)
                rtnl.queue_link_up(inner, index, ep.ifname)
                if i == 0:
                    rtnl.queue_default_route(inner, ep.gateway, index)
            inner.commit()
        finally:
            host_nl.close()
            inner.close()

    def _new_endpoint(self, rec: dict[str, Any], net: dict[str, Any], es: dict[str, Any],
                      ifname: str) -> Endpoint:
        eid = new_id()
        pool = self._pool(net)
        wanted = (es.get("IPAMConfig") or {}).get("IPv4Address") or None
        if wanted and net["Name"] == "bridge":
            raise UsageError("user specified IP address is supported on user defined networks only",
                             hint="create a network with `sandbox network create` and use --network NAME --ip ...")
        addr = pool.allocate(eid, wanted)
        mac = es.get("MacAddress") or (rec["Config"].get("MacAddress") if ifname == "eth0" else "") \
            or addresses.mac_for(addr)
        aliases = list(es.get("Aliases") or [])
        return Endpoint(net["Id"], net["Name"], eid, ifname, veth_name(eid), str(addr), pool.subnet.prefixlen,
                        str(pool.gateway), mac, aliases)

    def _start_name_server(self, cid: str, att: Attachment, host: dict[str, Any]) -> None:
        from .dns import ADDRESS
        assert att.netns is not None
        upstream = list(host.get("Dns") or []) or self.settings.dns
        sock = att.netns.udp_socket(ADDRESS, 53)
        att.dns = NameServer(self.loop, sock, lambda name: self.lookup(cid, name), self.reverse,
                             (lambda: upstream) if upstream else host_resolvers)

    def _publish(self, rec: dict[str, Any], att: Attachment) -> None:
        """Reserve the host ports and note the DNAT rules (``-p``, and ``-P`` for EXPOSEd ports)."""
        host = rec["HostConfig"]
        bindings = dict(host.get("PortBindings") or {})
        if host.get("PublishAllPorts"):
            for key in (rec["Config"].get("ExposedPorts") or {}):
                bindings.setdefault(key, [{"HostIp": "", "HostPort": ""}])
        if not bindings:
            return
        first = next(iter(att.endpoints.values()))
        ports: dict[str, list[dict[str, str]]] = {}
        for key in sorted(bindings, key=lambda k: split_key(k)):
            port, proto = split_key(key)
            for b in bindings[key] or [{"HostIp": "", "HostPort": ""}]:
                self._check_not_ours(b, proto)
                res = reserve(b.get("HostIp") or "", str(b.get("HostPort") or ""), proto)
                att.reservations.append(res)
                att.forwards.append(firewall.Forward(res.ip, res.port, proto, first.address, port))
                ports.setdefault(key, []).append({"HostIp": res.ip, "HostPort": str(res.port)})
        rec["NetworkSettings"]["Ports"] = ports

    def _check_not_ours(self, binding: dict[str, str], proto: str) -> None:
        """A port another of our containers publishes: say which (the kernel would only say "in use")."""
        wanted = str(binding.get("HostPort") or "")
        if not wanted.isdigit():
            return
        for cid, att in self.attachments.items():
            for r in att.reservations:
                if r.port == int(wanted) and r.proto == proto:
                    raise PortInUse(f"Bind for {binding.get('HostIp') or '0.0.0.0'}:{wanted} failed: port is "
                                    f"already allocated (published by container {self._name_of(cid)})",
                                    hint="publish another host port, or stop that container")

    def _write_etc(self, rec: dict[str, Any], cdir: Path, addrs: list[str], *, embedded: bool) -> None:
        config, host = rec["Config"], rec["HostConfig"]
        mode = host.get("NetworkMode") or "none"
        etcfiles.write_in_place(str(cdir / "hosts"), etcfiles.hosts_text(
            config.get("Hostname") or rec["Id"][:12], config.get("Domainname") or "", mode,
            list(host.get("ExtraHosts") or []), addrs))
        etcfiles.write_in_place(str(cdir / "resolv.conf"), etcfiles.resolv_text(
            mode, embedded, list(host.get("Dns") or []) or self.settings.dns,
            list(host.get("DnsSearch") or []) or self.settings.dns_search,
            list(host.get("DnsOptions") or []) or self.settings.dns_opts))

    def _join_container(self, rec: dict[str, Any], cdir: Path, ref: str) -> str:
        """``--network container:NAME``: the other's namespace, hosts and resolv.conf."""
        other = self._running_record(ref)
        pid = int(other["State"].get("Pid") or 0)
        odir = Path(other["HostsPath"]).parent
        for name in ("hosts", "resolv.conf", "hostname"):
            with contextlib.suppress(OSError):
                etcfiles.write_in_place(str(cdir / name), (odir / name).read_text())
        return f"/proc/{pid}/ns/net"

    def _running_record(self, ref: str) -> dict[str, Any]:
        from ..containers.records import ContainerStore
        recs = list(self.records())
        cid = ContainerStore(self.root).resolve(ref, recs)
        other = next(r for r in recs if r["Id"] == cid)
        if not other["State"].get("Running"):
            from ..errors import InvalidStateTransition
            raise InvalidStateTransition(f"cannot join the network of a non running container: {ref}",
                                         state=other["State"].get("Status", ""),
                                         hint=f"start {ref} first")
        return other

    def detach(self, rec: dict[str, Any]) -> None:
        """The container has stopped (or did not start): give back everything :meth:`attach` took."""
        att = self.attachments.pop(rec["Id"], None) or Attachment()
        if att.dns is not None:
            att.dns.close()
        for res in att.reservations:
            res.close()
        for nid, ep in att.endpoints.items():
            pool = self._pools.get(nid)
            if pool is not None:
                pool.release(ep.endpoint_id)
        if att.netns is not None:
            att.netns.close()   # the kernel removes the namespace, and the veths with it, once its processes are gone
        if att.forwards:
            with contextlib.suppress(SandboxError, OSError):
                self._firewall()
        ns = rec.get("NetworkSettings") or {}
        for es in (ns.get("Networks") or {}).values():
            es.update(EndpointID="", Gateway="", IPAddress="", IPPrefixLen=0, MacAddress="")
        ns.update(SandboxKey="", SandboxID="", EndpointID="", Gateway="", IPAddress="", IPPrefixLen=0,
                  MacAddress="", Ports={})

    # ------------------------------------------------------------------ connect, disconnect

    def connect(self, rec: dict[str, Any], ref: str, aliases: list[str], ip: str | None) -> dict[str, Any]:
        """``network connect``: add the network to the container's; live when it runs."""
        net = self.find(ref)
        mode = rec["HostConfig"].get("NetworkMode") or "none"
        if net["Driver"] != "bridge" or mode in ("none", "host") or mode.startswith("container:"):
            raise UsageError(f"container cannot be connected to network {net['Name']}: it is on "
                             f"{mode if net['Driver'] == 'bridge' else net['Name']}",
                             hint="only containers on bridge networks can join other bridge networks")
        nets = rec["NetworkSettings"].setdefault("Networks", {})
        if net["Name"] in nets:
            from ..errors import Conflict
            raise Conflict(f"endpoint with name {str(rec['Name']).lstrip('/')} already exists in network "
                           f"{net['Name']}", hint="it is connected already")
        es: dict[str, Any] = {"IPAMConfig": {"IPv4Address": ip} if ip else None, "Links": None,
                              "Aliases": list(aliases) or None, "NetworkID": net["Id"]}
        att = self.attachments.get(rec["Id"])
        if att is not None and att.netns is not None:
            net = self._bridge_up(net)
            ep = self._new_endpoint(rec, net, es, f"eth{len(att.endpoints)}")
            try:
                self._live_endpoint(att, net, ep)
            except BaseException:
                self._pool(net).release(ep.endpoint_id)
                raise
            att.endpoints[net["Id"]] = ep
            if user_network(net) and att.dns is None:
                self._start_name_server(rec["Id"], att, rec["HostConfig"])
            nets[net["Name"]] = es
            record_endpoints(rec, att)
            self._write_etc(rec, Path(rec["HostsPath"]).parent, [e.address for e in att.endpoints.values()],
                            embedded=att.dns is not None)
        else:
            nets[net["Name"]] = es
        self.event("network", net["Id"], "connect", {"container": rec["Id"], "name": net["Name"],
                                                    "type": "bridge"})
        return net

    def _live_endpoint(self, att: Attachment, net: dict[str, Any], ep: Endpoint) -> None:
        assert att.netns is not None
        with rtnl.Netlink() as host_nl:
            rtnl.queue_veth(host_nl, ep.veth, self._up[net["Sandbox"]["Bridge"]], ep.ifname, att.netns.fd, ep.mac)
            host_nl.commit()
        with att.netns.netlink() as inner:
            index = inner.link_index(ep.ifname)
            rtnl.queue_address(inner, index, ep.ifname, ep.address, ep.prefixlen)
            rtnl.queue_link_up(inner, index, ep.ifname)
            inner.commit()

    def disconnect(self, rec: dict[str, Any], ref: str) -> dict[str, Any]:
        net = self.find(ref)
        nets = (rec.get("NetworkSettings") or {}).get("Networks") or {}
        if net["Name"] not in nets:
            raise UsageError(f"container {str(rec['Name']).lstrip('/')} is not connected to network {net['Name']}",
                             hint="`sandbox inspect -f '{{json .NetworkSettings.Networks}}' CONTAINER` "
                                  "lists its networks")
        att = self.attachments.get(rec["Id"])
        ep = att.endpoints.pop(net["Id"], None) if att is not None else None
        if ep is not None and att is not None:
            rtnl.delete_link(ep.veth)
            self._pool(net).release(ep.endpoint_id)
            if att.dns is not None and not any(user_network(self.find(e.network)) for e in att.endpoints.values()):
                att.dns.close()
                att.dns = None
            self._write_etc(rec, Path(rec["HostsPath"]).parent, [e.address for e in att.endpoints.values()],
                            embedded=att.dns is not None)
        del nets[net["Name"]]
        self.event("network", net["Id"], "disconnect", {"container": rec["Id"], "name": net["Name"],
                                                       "type": "bridge"})
        return net

    # ------------------------------------------------------------------ names

    def lookup(self, asker: str, name: str) -> list[str] | None:
        """Addresses for ``name`` as the container ``asker`` sees it; None when the name is not ours."""
        mine = self.attachments.get(asker)
        if mine is None:
            return None
        names = {r["Id"]: str(r.get("Name", "")).lstrip("/") for r in self.records()}
        found: list[str] = []
        for nid in mine.endpoints:
            for cid, att in self.attachments.items():
                ep = att.endpoints.get(nid)
                if ep is None:
                    continue
                cname = names.get(cid, "")
                known = {cname, cid[:12], f"{cname}.{ep.network}".lower(), *[a.lower() for a in ep.aliases]}
                if name in known and ep.address not in found:
                    found.append(ep.address)
        return found or None

    def reverse(self, address: str) -> str | None:
        names = {r["Id"]: str(r.get("Name", "")).lstrip("/") for r in self.records()}
        for cid, att in self.attachments.items():
            for ep in att.endpoints.values():
                if ep.address == address:
                    return f"{names.get(cid, cid[:12])}.{ep.network}"
        return None

