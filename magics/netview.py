"""``NetworkView()``: the host, its bridges and every running container's veth pair, drawn.

What a student needs to see at a glance: each network is a bridge on the
host with the gateway address; each container hangs off its bridges by a
veth pair (host end ``sbv...`` on the bridge, ``eth0`` inside), with its
address, MAC and the inode of its network namespace; published ports point
from the host into the container.  The picture comes from the kernel, not
from our records alone: the bridge ports from ``/sys/class/net/BRIDGE/brif``,
each container's interfaces and routes from ``/proc/PID/net/dev`` and
``/proc/PID/net/route`` (readable without entering its namespace).

The widget is a picture (matplotlib, Agg, as PNG) above a table; the
display bundle carries both as static HTML too, so a saved notebook keeps
the drawing.  ``network_picture(engine)`` returns the data behind it.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
from typing import Any

from sandbox.tables import esc, html_table

from .views import View, _engine, refresh_button


def _routes(pid: int) -> list[str]:
    """``ip route``-like lines for process ``pid``'s namespace, from /proc/PID/net/route."""
    out = []
    try:
        with open(f"/proc/{pid}/net/route") as f:
            next(f)
            for line in f:
                dev, dest, gw, flags, _, _, _, mask = line.split()[:8]
                d = socket.inet_ntoa(struct.pack("<I", int(dest, 16)))
                g = socket.inet_ntoa(struct.pack("<I", int(gw, 16)))
                bits = bin(int(mask, 16)).count("1")
                if d == "0.0.0.0" and bits == 0:
                    out.append(f"default via {g} dev {dev}")
                else:
                    out.append(f"{d}/{bits} dev {dev}" + (f" via {g}" if int(flags, 16) & 2 else ""))
    except (OSError, StopIteration, ValueError):
        pass
    return out


def _interfaces(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            return [line.split(":")[0].strip() for line in f.readlines()[2:]]
    except OSError:
        return []


def _bridge_ports(bridge: str) -> list[str]:
    try:
        return sorted(os.listdir(f"/sys/class/net/{bridge}/brif"))
    except OSError:
        return []


def _uplink() -> str:
    """The host interface of the default route (where outbound NAT leaves)."""
    try:
        with open("/proc/net/route") as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[1] == "00000000" and fields[7] == "00000000":
                    return fields[0]
    except (OSError, StopIteration):
        pass
    return "?"


def network_picture(engine: Any) -> dict[str, Any]:
    """The host, its bridge networks, and each running container's endpoints, ports and namespace."""
    nets = [n.attrs for n in engine.networks.list()]
    bridges = []
    for n in sorted(nets, key=lambda n: (n["Name"] != "bridge", n["Name"])):
        if n["Driver"] != "bridge":
            continue
        name = (n.get("Options") or {}).get("com.docker.network.bridge.name") or ""
        cfg = (n["IPAM"]["Config"] or [{}])[0]
        bridges.append({"network": n["Name"], "bridge": name, "subnet": cfg.get("Subnet", ""),
                        "gateway": cfg.get("Gateway", ""), "internal": bool(n.get("Internal")),
                        "up": os.path.exists(f"/sys/class/net/{name}"), "ports": _bridge_ports(name)})
    containers = []
    for c in engine.containers.list():
        a = c.attrs
        pid = int(a["State"].get("Pid") or 0)
        ns = a.get("NetworkSettings") or {}
        endpoints = []
        for net, es in sorted((ns.get("Networks") or {}).items()):
            if es.get("EndpointID"):
                endpoints.append({"network": net, "veth": "sbv" + es["EndpointID"][:12],
                                  "address": f"{es['IPAddress']}/{es['IPPrefixLen']}", "mac": es.get("MacAddress")})
        try:
            inode = os.stat(f"/proc/{pid}/ns/net").st_ino if pid else 0
        except OSError:
            inode = 0
        ports = [f"{b['HostIp']}:{b['HostPort']} -> {key}" for key, bound in sorted((ns.get("Ports") or {}).items())
                 for b in bound or []]
        containers.append({"name": c.name, "mode": a["HostConfig"].get("NetworkMode"), "netns": inode,
                           "interfaces": _interfaces(pid) if pid else [], "routes": _routes(pid) if pid else [],
                           "endpoints": endpoints, "ports": ports})
    try:
        host_inode = os.stat("/proc/self/ns/net").st_ino
    except OSError:
        host_inode = 0
    return {"uplink": _uplink(), "host_netns": host_inode, "bridges": bridges, "containers": containers}


def draw(picture: dict[str, Any]) -> Any:
    """A matplotlib Figure of the picture: host on top, bridges as bars, containers below on veth lines."""
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch
    bridges = [b for b in picture["bridges"] if b["up"] or b["network"] == "bridge"]
    attached = [c for c in picture["containers"] if c["endpoints"]]
    others = [c for c in picture["containers"] if not c["endpoints"]]
    columns = max(len(attached) + len(others), 1)
    width = max(8.0, 2.6 * columns)
    fig = Figure(figsize=(width, 1.6 + 1.0 * max(len(bridges), 1) + 2.2))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    top = 1.6 + 1.0 * max(len(bridges), 1) + 2.2
    ax.set_ylim(0, top)
    ax.axis("off")
    # the host
    ax.add_patch(FancyBboxPatch((0.1, 2.3), width - 0.2, top - 2.4, boxstyle="round,pad=0.02",
                                facecolor="#f6f8fa", edgecolor="#57606a"))
    ax.text(0.3, top - 0.35, f"host  (network namespace {picture['host_netns']}, uplink {picture['uplink']})",
            fontsize=10, weight="bold", va="center")
    y_of: dict[str, float] = {}
    for i, b in enumerate(bridges):
        y = top - 1.1 - i * 1.0
        y_of[b["network"]] = y
        color = "#0969da" if not b["internal"] else "#8250df"
        ax.plot([0.4, width - 0.4], [y, y], color=color, linewidth=5, solid_capstyle="round", alpha=0.85)
        label = (f"{b['bridge'] or '?'}  ({b['network']})  gateway {b['gateway']}  subnet {b['subnet']}"
                 + ("  internal: no NAT" if b["internal"] else "  NAT out via " + picture["uplink"])
                 + ("" if b["up"] else "  (down: no container uses it)"))
        ax.text(0.5, y + 0.18, label, fontsize=8, color=color)
    # containers
    col_w = width / columns
    for j, c in enumerate(attached + others):
        x = col_w * j + col_w / 2
        ax.add_patch(FancyBboxPatch((x - col_w / 2 + 0.15, 0.6), col_w - 0.3, 1.45, boxstyle="round,pad=0.02",
                                    facecolor="#fff8c5" if c["endpoints"] else "#eeeeee", edgecolor="#9a6700"))
        ax.text(x, 1.92, c["name"], fontsize=9, ha="center", va="top", weight="bold")
        lines = [f"netns {c['netns']}"]
        lines += [f"eth{k} {e['address']}" for k, e in enumerate(c["endpoints"])] or [f"--network {c['mode']}"]
        lines += c["routes"][:2]
        ax.text(x, 1.68, "\n".join(lines), fontsize=7, ha="center", va="top", family="monospace")
        for p in c["ports"][:2]:
            ax.text(x, 0.45 - 0.2 * c["ports"].index(p), f"published {p}", fontsize=7, ha="center",
                    color="#cf222e", family="monospace")
        for k, e in enumerate(c["endpoints"]):
            if e["network"] not in y_of:
                continue
            y = y_of[e["network"]]
            xe = x - 0.3 + 0.6 * k
            ax.plot([xe, xe], [y, 2.05], color="#1a7f37", linewidth=1.5)
            ax.text(xe + 0.05, 2.2, f"{e['veth']}", fontsize=6, color="#1a7f37", rotation=90, va="bottom")
    return fig


def _png(fig: Any) -> bytes:
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()


class NetworkView(View):
    """The store's networks as a picture (bridges, veth pairs, addresses, ports) and a table."""

    def __init__(self, *, engine: Any = None) -> None:
        import ipywidgets as w
        self.engine = _engine(engine)
        self.image = w.Image(format="png", layout=w.Layout(max_width="1100px"))
        self.html = w.HTML()
        self.widget = w.VBox([refresh_button(self.refresh), self.image, self.html])
        self.picture: dict[str, Any] = {}
        self._png = b""
        self.refresh()

    def refresh(self) -> None:
        self.picture = network_picture(self.engine)
        self._png = _png(draw(self.picture))
        self.image.value = self._png
        self.html.value = self._table()

    def _table(self) -> str:
        rows = []
        for c in self.picture["containers"]:
            eps = c["endpoints"] or [{"network": c["mode"], "veth": "", "address": "", "mac": ""}]
            for e in eps:
                rows.append([c["name"], e["network"], e["address"], e["mac"] or "", e["veth"],
                             ", ".join(c["interfaces"]), "; ".join(c["routes"]), ", ".join(c["ports"]),
                             str(c["netns"])])
        bridges = html_table(["network", "bridge", "subnet", "gateway", "ports on the bridge"],
                             [[b["network"], b["bridge"], b["subnet"], b["gateway"], " ".join(b["ports"])]
                              for b in self.picture["bridges"]])
        return (bridges + html_table(["container", "network", "address", "MAC", "host end of veth",
                                      "interfaces inside", "routes inside", "published", "netns"], rows))

    def static_html(self) -> str:
        img = f'<img src="data:image/png;base64,{base64.b64encode(self._png).decode()}"/>' if self._png else ""
        return img + self.html.value

    def _repr_png_(self) -> bytes:
        return self._png


__all__ = ["NetworkView", "network_picture", "draw", "esc"]
