"""Network requests: ``network create|ls|inspect|rm|prune|connect|disconnect``.

The supervisor owns networks (bridges, rules and the name server must
outlive clients), so every verb is a request; a connect or disconnect of a
running container takes effect at once.
"""

from __future__ import annotations

from typing import Any

from ..conn import Conn
from ..core import Core


def op_network_create(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    from ... import rootless
    if rootless.inside():
        from ...errors import UsageError
        raise UsageError(f"cannot create network {msg['name']!r}: networks need root (a bridge lives in "
                         "the host's network namespace); rootless containers use the host's network or none",
                         hint="run the engine as root for networks, or use --network none")
    rec = core.network.create(msg["name"], driver=msg.get("driver") or "bridge", subnet=msg.get("subnet"),
                              gateway=msg.get("gateway"), internal=bool(msg.get("internal")),
                              labels=msg.get("labels") or {})
    return {"Id": rec["Id"], "Warning": ""}


def op_network_list(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    return [core.network.inspect(r) for r in core.network.networks()]


def op_network_inspect(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    return core.network.inspect(core.network.find(msg["id"]))


def op_network_remove(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    rec = core.network.remove(msg["id"])
    return {"Id": rec["Id"], "Name": rec["Name"]}


def op_network_prune(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    return {"NetworksDeleted": core.network.prune(msg.get("labels") or [])}


def op_network_connect(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    box = core.box(msg["container"])
    net = core.network.connect(box.rec, msg["network"], list(msg.get("aliases") or []), msg.get("ip"))
    box.save(durable=True)
    return {"Network": net["Name"], "Container": box.id}


def op_network_disconnect(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    box = core.box(msg["container"])
    net = core.network.disconnect(box.rec, msg["network"])
    box.save(durable=True)
    return {"Network": net["Name"], "Container": box.id}


HANDLERS = {"network_create": op_network_create, "network_list": op_network_list,
            "network_inspect": op_network_inspect, "network_remove": op_network_remove,
            "network_prune": op_network_prune, "network_connect": op_network_connect,
            "network_disconnect": op_network_disconnect}
