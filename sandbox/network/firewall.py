"""The store's firewall rules: one nftables table, rebuilt whole from the networks and published ports.

Each store owns one table, ``ip sandbox_<8 hex of the store path>``, so two
stores (or Docker, whose rules live in iptables' tables) never touch each
other's rules, and "remove everything of ours" is one ``delete table``.
The table is never edited rule by rule: :func:`ruleset` computes the whole
of it from the current state and :func:`apply` replaces it in one nftables
transaction (``add table; delete table; add table; ...``), so a half-applied
change cannot exist, rules lost by hand or by a reboot come back at the
next change or supervisor start, and conntrack keeps established
connections across a rebuild.

What is in it, chain by chain:

* ``prerouting`` and ``output`` (nat): for each published port, DNAT of
  packets for one of the host's own addresses (``fib daddr type local``, or
  the ``-p`` host address) to the container's address and port.  Prerouting
  catches other hosts and other containers; output catches the host itself.
* ``postrouting`` (nat): masquerade of a network's traffic leaving by
  another interface (outbound NAT; not for ``--internal`` networks);
  masquerade of loopback-sourced packets that DNAT sent to a bridge
  (``curl 127.0.0.1:PORT``; the bridge has ``route_localnet`` on); and
  hairpin masquerade, for a container reaching a published port of its own
  network through the host's address, so the answer comes back the same way.
* ``forward`` (filter): published ports are reachable from every network;
  otherwise traffic between two of our bridges is refused (separate networks
  cannot reach each other), and an internal network's traffic may not leave
  its bridge.  Refused, not dropped as Docker does: an ICMP error ends the
  attempt at once.

Rules go in as libnftables' JSON (:mod:`sandbox.kernel.nftables`), built as
data here, never as command text.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

_FAMILY = "ip"


@dataclass(frozen=True)
class Bridge:
    name: str
    subnet: str        # "10.222.0.0/24"
    internal: bool = False


@dataclass(frozen=True)
class Forward:
    """One published port: ``host_ip:host_port/proto`` -> ``container_ip:container_port``."""
    host_ip: str       # "" or "0.0.0.0": any local address
    host_port: int
    proto: str
    container_ip: str
    container_port: int


def table_name(root: str) -> str:
    return "sandbox_" + hashlib.sha256(root.encode()).hexdigest()[:8]


#: Refused traffic gets an ICMP "administratively prohibited" at once, where Docker drops it:
#: a student's ``wget`` then fails in a moment instead of hanging for two minutes of SYN retries.
_REFUSE: dict[str, Any] = {"reject": {"type": "icmp", "expr": "admin-prohibited"}}


def _match(left: Any, right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def _meta(key: str) -> dict[str, Any]:
    return {"meta": {"key": key}}


def _prefix(cidr: str) -> dict[str, Any]:
    addr, _, length = cidr.partition("/")
    return {"prefix": {"addr": addr, "len": int(length)}}


def _saddr() -> dict[str, Any]:
    return {"payload": {"protocol": "ip", "field": "saddr"}}


def _ct_dnat() -> dict[str, Any]:
    return _match({"ct": {"key": "status"}}, "dnat", op="in")


def _dnat_rule(f: Forward) -> list[dict[str, Any]]:
    expr: list[dict[str, Any]] = [_match({"fib": {"result": "type", "flags": ["daddr"]}}, "local")]
    if f.host_ip and f.host_ip != "0.0.0.0":
        expr.append(_match({"payload": {"protocol": "ip", "field": "daddr"}}, f.host_ip))
    expr.append(_match({"payload": {"protocol": f.proto, "field": "dport"}}, f.host_port))
    expr.append({"dnat": {"addr": f.container_ip, "port": f.container_port}})
    return expr


def _postrouting(bridges: list[Bridge]) -> list[list[dict[str, Any]]]:
    rules = []
    for b in bridges:
        if not b.internal:
            rules.append([_match(_saddr(), _prefix(b.subnet)), _match(_meta("oifname"), b.name, "!="),
                          {"masquerade": None}])
        rules.append([_match(_saddr(), _prefix("127.0.0.0/8")), _match(_meta("oifname"), b.name),
                      {"masquerade": None}])
        rules.append([_match(_saddr(), _prefix(b.subnet)), _match(_meta("oifname"), b.name), _ct_dnat(),
                      {"masquerade": None}])
    return rules


def _forward(bridges: list[Bridge]) -> list[list[dict[str, Any]]]:
    rules: list[list[dict[str, Any]]] = [[_ct_dnat(), {"accept": None}]]
    names = [b.name for b in bridges]
    for b in bridges:
        others = [n for n in names if n != b.name]
        if others:
            rules.append([_match(_meta("iifname"), b.name),
                          _match(_meta("oifname"), {"set": others} if len(others) > 1 else others[0]),
                          _REFUSE])
        if b.internal:
            rules.append([_match(_meta("iifname"), b.name), _match(_meta("oifname"), b.name, "!="),
                          _REFUSE])
            rules.append([_match(_meta("oifname"), b.name), _match(_meta("iifname"), b.name, "!="),
                          _REFUSE])
    return rules


def ruleset(table: str, bridges: list[Bridge], forwards: list[Forward]) -> dict[str, Any]:
    """The nftables JSON that replaces ``table`` with exactly these rules (or removes it when empty)."""
    t = {"family": _FAMILY, "name": table}
    cmds: list[dict[str, Any]] = [{"add": {"table": t}}, {"delete": {"table": t}}]
    if not bridges and not forwards:
        return {"nftables": cmds}
    cmds.append({"add": {"table": t}})
    chains = {"prerouting": ("nat", "prerouting", -100), "output": ("nat", "output", -100),
              "postrouting": ("nat", "postrouting", 100), "forward": ("filter", "forward", 0)}
    for name, (kind, hook, prio) in chains.items():
        cmds.append({"add": {"chain": {"family": _FAMILY, "table": table, "name": name, "type": kind,
                                       "hook": hook, "prio": prio, "policy": "accept"}}})
    rules: dict[str, list[list[dict[str, Any]]]] = {
        "prerouting": [_dnat_rule(f) for f in forwards],
        "output": [_dnat_rule(f) for f in forwards],
        "postrouting": _postrouting(bridges),
        "forward": _forward(bridges),
    }
    for chain, exprs in rules.items():
        for expr in exprs:
            cmds.append({"add": {"rule": {"family": _FAMILY, "table": table, "chain": chain, "expr": expr}}})
    return {"nftables": cmds}


def apply(table: str, bridges: list[Bridge], forwards: list[Forward]) -> None:
    """Replace the store's table (see :func:`ruleset`); a :class:`~sandbox.errors.NetworkError` if refused."""
    from ..kernel import nftables
    nftables.nft_run(ruleset(table, bridges, forwards))


def remove(table: str) -> None:
    apply(table, [], [])


def exists(table: str) -> bool:
    from ..kernel import nftables
    listing = nftables.nft_run({"nftables": [{"list": {"tables": {"family": _FAMILY}}}]})
    return any((item.get("table") or {}).get("name") == table for item in listing.get("nftables", []))
