"""``sandbox network create|ls|inspect|rm|connect|disconnect|prune`` and ``sandbox port``."""

from __future__ import annotations

import json
import sys
from typing import Any

from .table import write_format, write_table


def register(sub: Any) -> None:
    p = sub.add_parser("network", help="Manage networks")
    nsub = p.add_subparsers(dest="network_verb", metavar="COMMAND", parser_class=type(p), prog=p.prog)
    nsub.required = True
    c = nsub.add_parser("create", help="Create a network")
    c.add_argument("name", metavar="NETWORK")
    c.add_argument("-d", "--driver", default="bridge", help="driver to manage the network (bridge)")
    c.add_argument("--subnet", help="subnet in CIDR format, e.g. 10.30.0.0/24")
    c.add_argument("--gateway", help="IPv4 gateway of the subnet (default: its first address)")
    c.add_argument("--internal", action="store_true", help="restrict external access to the network")
    c.add_argument("--label", action="append", default=[], help="set metadata on a network")
    c.add_argument("-o", "--opt", action="append", default=[], help="(accepted for compatibility)")
    c.add_argument("--attachable", action="store_true", help="(accepted for compatibility)")
    c.set_defaults(func=run_create)
    for name in ("ls", "list"):
        ls = nsub.add_parser(name, help="List networks")
        ls.add_argument("-q", "--quiet", action="store_true", help="only display network IDs")
        ls.add_argument("-f", "--filter", action="append", default=[],
                        help="name=, id=, driver=, label=, type=custom|builtin")
        ls.add_argument("--format", help="Go template, e.g. 'table {{.Name}}\\t{{.Driver}}'")
        ls.add_argument("--no-trunc", action="store_true", help="do not truncate the output")
        ls.set_defaults(func=run_ls)
    i = nsub.add_parser("inspect", help="Display detailed information on one or more networks")
    i.add_argument("names", nargs="+", metavar="NETWORK")
    i.add_argument("-f", "--format", help="Go template, e.g. '{{range .IPAM.Config}}{{.Subnet}}{{end}}'")
    i.set_defaults(func=run_inspect)
    for name in ("rm", "remove"):
        r = nsub.add_parser(name, help="Remove one or more networks")
        r.add_argument("names", nargs="+", metavar="NETWORK")
        r.set_defaults(func=run_rm)
    cn = nsub.add_parser("connect", help="Connect a container to a network")
    cn.add_argument("network", metavar="NETWORK")
    cn.add_argument("container", metavar="CONTAINER")
    cn.add_argument("--alias", action="append", default=[], help="network-scoped alias for the container")
    cn.add_argument("--ip", help="IPv4 address (e.g. 10.30.0.10)")
    cn.set_defaults(func=run_connect)
    dc = nsub.add_parser("disconnect", help="Disconnect a container from a network")
    dc.add_argument("network", metavar="NETWORK")
    dc.add_argument("container", metavar="CONTAINER")
    dc.add_argument("-f", "--force", action="store_true", help="force the container to disconnect")
    dc.set_defaults(func=run_disconnect)
    pr = nsub.add_parser("prune", help="Remove all unused networks")
    pr.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    pr.add_argument("--filter", action="append", default=[], help="label=KEY[=VALUE]")
    pr.set_defaults(func=run_prune)
    port = sub.add_parser("port", help="List port mappings or a specific mapping for the container")
    port.add_argument("container", metavar="CONTAINER")
    port.add_argument("private", nargs="?", metavar="PRIVATE_PORT[/PROTO]")
    port.set_defaults(func=run_port)


def run_create(engine: Any, args: Any, out: Any) -> int:
    labels = dict(item.partition("=")[::2] for item in args.label)
    net = engine.networks.create(args.name, driver=args.driver, subnet=args.subnet, gateway=args.gateway,
                                 internal=args.internal, labels=labels)
    out.write(net.id + "\n")
    return 0


def _matches(net: Any, filters: dict[str, list[str]]) -> bool:
    a = net.attrs
    for key, values in filters.items():
        if key == "name" and not any(v in a["Name"] for v in values):
            return False
        if key == "id" and not any(a["Id"].startswith(v) for v in values):
            return False
        if key == "driver" and a["Driver"] not in values:
            return False
        if key == "type":
            builtin = a["Name"] in ("bridge", "host", "none")
            if not any((v == "builtin") == builtin for v in values):
                return False
        if key == "label":
            labels = a.get("Labels") or {}
            for v in values:
                k, sep, val = v.partition("=")
                if k not in labels or (sep and labels[k] != val):
                    return False
    return True


def run_ls(engine: Any, args: Any, out: Any) -> int:
    from ..errors import UsageError
    from .ps import parse_filters
    filters = parse_filters(args.filter)
    for key in filters:
        if key not in ("name", "id", "driver", "label", "type"):
            raise UsageError(f"invalid filter '{key}'", hint="use name=, id=, driver=, label= or type=")
    nets = sorted((n for n in engine.networks.list() if _matches(n, filters)), key=lambda n: n.name)
    if args.quiet:
        for n in nets:
            out.write((n.id if args.no_trunc else n.short_id) + "\n")
        return 0
    rows = [{"ID": n.id if args.no_trunc else n.short_id, "Name": n.name, "Driver": n.attrs["Driver"],
             "Scope": n.attrs["Scope"], "Internal": str(bool(n.attrs.get("Internal"))).lower(),
             "CreatedAt": n.attrs["Created"],
             "Labels": ",".join(f"{k}={v}" for k, v in (n.attrs.get("Labels") or {}).items())} for n in nets]
    if args.format:
        write_format(out, args.format, rows, {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER",
                                              "Scope": "SCOPE", "Internal": "INTERNAL", "Labels": "LABELS",
                                              "CreatedAt": "CREATED"})
        return 0
    write_table(out, ["NETWORK ID", "NAME", "DRIVER", "SCOPE"],
                [[r["ID"], r["Name"], r["Driver"], r["Scope"]] for r in rows])
    return 0


def run_inspect(engine: Any, args: Any, out: Any) -> int:
    from ..errors import SandboxError
    found, status = [], 0
    for name in args.names:
        try:
            found.append(engine.networks.get(name).attrs)
        except SandboxError as e:
            print(f"Error: {e}", file=sys.stderr)
            status = 1
    if args.format:
        from ..gotemplate import render
        template = args.format.replace("\\n", "\n").replace("\\t", "\t")
        for obj in found:
            out.write(render(template, obj) + "\n")
    else:
        out.write(json.dumps(found, indent=4) + "\n")
    return status


def run_rm(engine: Any, args: Any, out: Any) -> int:
    from .run import for_each
    return for_each(args.names, lambda n: engine.networks.get(n).remove(), out)


def run_connect(engine: Any, args: Any, out: Any) -> int:
    engine.networks.get(args.network).connect(args.container, aliases=args.alias, ipv4_address=args.ip)
    return 0


def run_disconnect(engine: Any, args: Any, out: Any) -> int:
    engine.networks.get(args.network).disconnect(args.container, force=args.force)
    return 0


def run_prune(engine: Any, args: Any, out: Any) -> int:
    from .ps import parse_filters
    result = engine.networks.prune(filters=parse_filters(args.filter))
    if result["NetworksDeleted"]:
        out.write("Deleted Networks:\n" + "".join(f"{n}\n" for n in result["NetworksDeleted"]))
    return 0


def run_port(engine: Any, args: Any, out: Any) -> int:
    """``docker port``: each published port as ``80/tcp -> 0.0.0.0:18080``."""
    from ..errors import UsageError
    container = engine.containers.get(args.container)
    ports = (container.attrs.get("NetworkSettings") or {}).get("Ports") or {}
    if args.private:
        key = args.private if "/" in args.private else f"{args.private}/tcp"
        bound = ports.get(key)
        if not bound:
            raise UsageError(f"No public port '{key}' published for {container.name}",
                             hint=f"`sandbox port {container.name}` lists what is published")
        for b in bound:
            out.write(f"{b['HostIp']}:{b['HostPort']}\n")
        return 0
    for key in sorted(ports, key=lambda k: (int(k.partition("/")[0]), k)):
        for b in ports[key] or []:
            out.write(f"{key} -> {b['HostIp']}:{b['HostPort']}\n")
    return 0
