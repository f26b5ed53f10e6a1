"""``create``: a container record, its directory, its init layer and its /etc files.

Two requests end here: ``create`` (the builder, which has resolved the image
itself) and ``create_named`` (everyone else: the image is resolved in the
supervisor, so a cold ``sandbox run`` never loads the image stack).  Nothing
is left behind when a create fails: the directory, the lease and any volume
made for it go again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from typing import Any

from ...containers import setup
from ...containers.records import NAME_RE, ZERO_TIME, new_id, random_name
from ...errors import ContainerExists, ImageNotFound, SandboxError, UsageError
from ..box import Box
from ..conn import Conn
from ..core import Core
from ..health import now_text
from ..mounts import mounts_for


def op_create(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    """``create`` with ``image_id`` and ``layers`` resolved by the caller (the builder)."""
    return create(core, msg)


def op_create_named(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    """``create`` of the image called ``image``.

    The image is resolved here and its config merged under the
    user's, so a client needs no image code.  Resolving and leasing happen
    under the store's transaction lock, so no garbage collection can remove
    the image in between.  Layers not unpacked yet: ``{"NeedUnpack": true}``
    and the client unpacks them (that can take seconds, too long to
    block this single-threaded loop).
    """
    from ...containers.defaults import check_resources, merge_image_config
    check_resources(msg["host_config"])
    ref = msg["image"]
    with core.store.transaction():
        try:
            img = core.images.get(ref)
        except ImageNotFound:
            raise ImageNotFound(f"Unable to find image '{ref}' locally",
                                hint=f"`sandbox pull {ref}`, or `sandbox bootstrap busybox` "
                                     "for an offline base image") from None
        if not all(core.images.layers.exists(c) for c in img.chain_ids):
            return {"NeedUnpack": True}
        config = merge_image_config(img.config.get("config") or {}, msg["config"],
                                    bool(msg.get("command_given", True)))
        config["Image"] = ref
        return create(core, {**msg, "config": config, "image_id": img.id, "layers": img.chain_ids,
                             "image_ref": ref})


def _name(core: Core, wanted: str | None) -> str:
    """The container's name: the one asked for (checked and free), or a random free one."""
    taken = core.taken_names()
    if not wanted:
        return random_name(set(taken))
    name = wanted.lstrip("/")
    if not NAME_RE.match(name):
        raise UsageError(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
                         hint="pick a name of letters, digits, _ . and -")
    if name in taken:
        raise ContainerExists(
            f'Conflict. The container name "/{name}" is already in use by container '
            f'"{taken[name]}". You have to remove (or rename) that container to be able '
            "to reuse that name.", hint=f"`sandbox rm {name}` or pick another --name")
    return name


def create(core: Core, msg: dict[str, Any]) -> Any:
    config, host = msg["config"], msg["host_config"]
    if (host.get("Runtime") or "sandbox") == "runc":
        from ..runc import runc_binary
        runc_binary()   # a clear error now rather than at start
    name = _name(core, msg.get("name"))
    cid = new_id()
    cdir = core.containers.path(cid)
    made_volumes: list[str] = []
    holder = f"container-{cid}"
    try:
        mounts = mounts_for(core.volumes, config, host, made_volumes)
        cdir.mkdir(parents=True)
        core.store.lease(holder, images=[msg["image_id"]], layers=list(msg["layers"]))
        setup.make_dirs(cdir, [m["Destination"] for m in mounts],
                        [m["Destination"] for m in mounts
                         if m.get("Type") == "bind" and os.path.isfile(m.get("Source") or "")])
        if not config.get("Hostname"):
            config["Hostname"] = cid[:12]
        setup.write_etc_files(cdir, config["Hostname"], config.get("Domainname") or "",
                              host.get("NetworkMode") or "none", host.get("ExtraHosts") or [],
                              host.get("Dns") or [], host.get("DnsSearch") or [])
        record = _record(core, cid, name, msg, mounts)
        core.containers.save(record, durable=True)
    except BaseException:
        shutil.rmtree(cdir, ignore_errors=True)
        with contextlib.suppress(OSError, SandboxError):
            core.store.release(holder)
        for v in made_volumes:
            with contextlib.suppress(SandboxError, OSError):
                core.volumes.remove(v)
        raise
    box = core.boxes[cid] = Box(core, record)
    box.event("create")
    return {"Id": cid, "Warnings": []}


def _record(core: Core, cid: str, name: str, msg: dict[str, Any],
            mounts: list[dict[str, Any]]) -> dict[str, Any]:
    """docker inspect's document for a new container, plus our private ``Sandbox`` section."""
    config, host = msg["config"], msg["host_config"]
    cdir = core.containers.path(cid)
    args = setup.process_args(config)
    network = host.get("NetworkMode") or "default"
    if network == "default":
        host["NetworkMode"] = network = "none"
    record: dict[str, Any] = {
        "Id": cid, "Created": now_text(), "Path": args[0] if args else "",
        "Args": args[1:], "Name": "/" + name, "RestartCount": 0,
        "State": {"Status": "created", "Running": False, "Paused": False, "Restarting": False,
                  "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
                  "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME},
        "Image": msg["image_id"], "ResolvConfPath": str(cdir / "resolv.conf"),
        "HostnamePath": str(cdir / "hostname"), "HostsPath": str(cdir / "hosts"),
        "LogPath": str(cdir / "container.log"), "Driver": "overlay",
        "Platform": "linux", "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "",
        "ExecIDs": None, "HostConfig": host,
        "GraphDriver": {"Name": "overlay", "Data": {
            "LowerDir": ":".join(setup.lower_dirs(core.store, cdir, list(msg["layers"]))),
            "UpperDir": str(cdir / "upper"), "WorkDir": str(cdir / "work"),
            "MergedDir": str(cdir / "rootfs")}},
        "Mounts": mounts, "Config": config,
        "NetworkSettings": {"Networks": {network: {}} if network != "none" else {"none": {}}},
        "Sandbox": {"Layers": list(msg["layers"]), "ImageRef": msg.get("image_ref") or "",
                    "BootId": "", "StartTime": 0, "HasBeenStarted": False,
                    "ManualStop": False},
    }
    if (config.get("Healthcheck") or {}).get("Test", ["NONE"])[0] != "NONE":
        record["State"]["Health"] = {"Status": "starting", "FailingStreak": 0, "Log": []}
    return record


HANDLERS = {"create": op_create, "create_named": op_create_named}
