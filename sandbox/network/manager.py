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
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterable

from ..errors import NetworkError, NetworkInUse, PortInUse, SandboxError, UsageError
from . import addresses, etcfiles, firewall, rtnl
from .dns import NameServer, host_resolvers
from .netns import NetNS
from .netstore import PREDEFINED, NetworkStore, Settings, new_id, new_record
from .ports import Reservation, reserve, split_key

#: The mark on our bridges (IFLA_IFALIAS): which store owns them.
ALIAS_PREFIX = "sandbox store "
#: Where the host's ip_forward setting is kept while our bridges need forwarding on.
FORWARD_SAVED = "/run/sandbox/ip_forward.saved"
IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"


@dataclass
class Endpoint:
    """One container on one network."""
    network_id: str
    network: str
    endpoint_id: str
    ifname: str
    veth: str
    address: str
    prefixlen: int
    gateway: str
    mac: str
    aliases: list[str]


@dataclass
class Attachment:
    """What a running container holds: its namespace, endpoints, name server and ports."""
    netns: NetNS | None = None
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    dns: NameServer | None = None
    reservations: list[Reservation] = field(default_factory=list)
    forwards: list[firewall.Forward] = field(default_factory=list)


def _veth_name(endpoint_id: str) -> str:
    return "sbv" + endpoint_id[:12]


def _user_network(rec: dict[str, Any]) -> bool:
    return rec["Driver"] == "bridge" and rec["Name"] != "bridge"


class NetworkManager:
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

    # ------------------------------------------------------------------ records

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

    def _name_of(self, cid: str) -> str:
        for r in self.records():
            if r["Id"] == cid:
                return str(r.get("Name", "")).lstrip("/")
        return cid[:12]

    # ------------------------------------------------------------------ bridges

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

    # ------------------------------------------------------------------ a container's wiring

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
            if any(_user_network(n) for n in nets):
                self._start_name_server(rec["Id"], att, host)
            self._publish(rec, att)
            if att.forwards:
                self._firewall()
        except BaseException:
            self.detach(rec)
            raise
        self._record_endpoints(rec, att)
        self._write_etc(rec, cdir, [ep.address for ep in att.endpoints.values()],
                        embedded=any(_user_network(n) for n in nets))
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
        return Endpoint(net["Id"], net["Name"], eid, ifname, _veth_name(eid), str(addr), pool.subnet.prefixlen,
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

    def _record_endpoints(self, rec: dict[str, Any], att: Attachment) -> None:
        ns = rec["NetworkSettings"]
        nets = ns.setdefault("Networks", {})
        for ep in att.endpoints.values():
            es = nets.setdefault(ep.network, {})
            es.update(NetworkID=ep.network_id, EndpointID=ep.endpoint_id, Gateway=ep.gateway,
                      IPAddress=ep.address, IPPrefixLen=ep.prefixlen, MacAddress=ep.mac,
                      IPv6Gateway="", GlobalIPv6Address="", GlobalIPv6PrefixLen=0)
            es.setdefault("Aliases", ep.aliases or None)
            es.setdefault("IPAMConfig", None)
            es.setdefault("Links", None)
            es.setdefault("DriverOpts", None)
        main = next((ep for ep in att.endpoints.values() if ep.network == "bridge"), None)
        ns.update(SandboxKey=att.netns.path if att.netns else "", SandboxID=str(att.netns.inode) if att.netns else "",
                  Bridge="", HairpinMode=False, LinkLocalIPv6Address="", LinkLocalIPv6PrefixLen=0,
                  SecondaryIPAddresses=None, SecondaryIPv6Addresses=None,
                  EndpointID=main.endpoint_id if main else "", Gateway=main.gateway if main else "",
                  IPAddress=main.address if main else "", IPPrefixLen=main.prefixlen if main else 0,
                  MacAddress=main.mac if main else "", GlobalIPv6Address="", GlobalIPv6PrefixLen=0,
                  IPv6Gateway="")
        ns.setdefault("Ports", {})

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
            if _user_network(net) and att.dns is None:
                self._start_name_server(rec["Id"], att, rec["HostConfig"])
            nets[net["Name"]] = es
            self._record_endpoints(rec, att)
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
            if att.dns is not None and not any(_user_network(self.find(e.network)) for e in att.endpoints.values()):
                att.dns.close()
                att.dns = None
            self._write_etc(rec, Path(rec["HostsPath"]).parent, [e.address for e in att.endpoints.values()],
                            embedded=att.dns is not None)
        del nets[net["Name"]]
        self.event("network", net["Id"], "disconnect", {"container": rec["Id"], "name": net["Name"],
                                                       "type": "bridge"})
        return net

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
            ep = Endpoint(net["Id"], net["Name"], es["EndpointID"], "", _veth_name(es["EndpointID"]),
                          es["IPAddress"], int(es["IPPrefixLen"]), es["Gateway"], es.get("MacAddress") or "",
                          list(es.get("Aliases") or []))
            att.endpoints[net["Id"]] = ep
            self._pool(net).taken[ep.address] = ep.endpoint_id
        if any(_user_network(self.find(e.network)) for e in att.endpoints.values()):
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
