"""Containers: create, list, inspect, the life-cycle verbs, top, changes, export, archive, prune.

The verbs are requests to the store's supervisor through the engine; the
answers and status codes are Docker's: ``start`` of a running container and
``stop`` of a stopped one are 304, a kill of a stopped one 409, a missing
container 404 with "No such container: NAME".
"""

from __future__ import annotations

import base64
import json
import tarfile
from typing import Any

from ...errors import ImageNotFound, InvalidStateTransition, NotFound
from ..http import ApiError, Exchange
from ..router import Router
from ..shapes import container_summary, filters, inspect_container
from ..translate import create_request
from .common import Writer, container, no_pending_wait


def create(d: Any, ex: Exchange) -> None:
    request = create_request(ex.json_body({}), ex.arg("name"))
    containers = d.engine.containers
    try:
        cid = containers._create(request["image"], request["config"], request["host_config"], request["name"],
                                 command_given=request["command_given"], networking=request["networking_config"])
    except ImageNotFound:
        raise ApiError(404, f"No such image: {_with_tag(request['image'])}") from None
    ex.json({"Id": cid, "Warnings": []}, status=201)


def _with_tag(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    return image if (":" in last or "@" in image) else f"{image}:latest"


def list_containers(d: Any, ex: Exchange) -> None:
    wanted = filters(ex.arg("filters"))
    limit = ex.int_arg("limit", -1)
    everything = ex.flag("all") or (limit is not None and limit > 0)
    by_filter: dict[str, Any] = {}
    for key, values in wanted.items():
        if key not in ("label", "name", "status", "ancestor", "id", "exited", "network", "volume", "health",
                       "before", "since", "expose", "publish", "is-task"):
            raise ApiError(400, f"invalid filter '{key}'")
        by_filter[key] = values
    since = (by_filter.pop("since", None) or [None])[0]
    before = (by_filter.pop("before", None) or [None])[0]
    by_filter.pop("is-task", None)
    found = d.engine.containers.list(all=everything, filters=by_filter or None,
                                     limit=limit if limit and limit > 0 else -1, since=since, before=before)
    ex.json([container_summary(c.attrs) for c in found])


def inspect(d: Any, ex: Exchange, id: str) -> None:
    c = container(d, id)
    doc = inspect_container(c.attrs)
    if ex.flag("size"):
        from ...containers.volumes import disk_usage
        doc["SizeRw"] = disk_usage(c.dir / "upper")
        doc["SizeRootFs"] = doc["SizeRw"]
    ex.json(doc)


def top(d: Any, ex: Exchange, id: str) -> None:
    c = container(d, id)
    if not c.attrs["State"].get("Running"):
        raise ApiError(409, f"Container {c.id} is not running")
    ex.json(c.top(ex.arg("ps_args") or None))


def changes(d: Any, ex: Exchange, id: str) -> None:
    ex.json(container(d, id).diff())


def export(d: Any, ex: Exchange, id: str) -> None:
    c = container(d, id)
    out = ex.stream(content_type="application/x-tar")
    c.export(Writer(out))
    out.end()


def start(d: Any, ex: Exchange, id: str) -> None:
    no_pending_wait(d, id)
    c = container(d, id)
    if c.attrs["State"].get("Running"):
        ex.empty(304)
        return
    c.start()
    ex.empty(204)


def stop(d: Any, ex: Exchange, id: str) -> None:
    c = container(d, id)
    if not c.attrs["State"].get("Running") and not c.attrs["State"].get("Restarting"):
        ex.empty(304)
        return
    t = ex.int_arg("t")
    c.stop(timeout=t, signal=ex.arg("signal") or None)
    ex.empty(204)


def restart(d: Any, ex: Exchange, id: str) -> None:
    container(d, id).restart(timeout=ex.int_arg("t"))
    ex.empty(204)


def kill(d: Any, ex: Exchange, id: str) -> None:
    c = container(d, id)
    if not c.attrs["State"].get("Running"):
        raise ApiError(409, f"Cannot kill container: {id}: Container {c.id} is not running")
    try:
        c.kill(ex.arg("signal") or "KILL")
    except InvalidStateTransition as e:
        raise ApiError(409, str(e)) from None
    ex.empty(204)


def pause(d: Any, ex: Exchange, id: str) -> None:
    container(d, id).pause()
    ex.empty(204)


def unpause(d: Any, ex: Exchange, id: str) -> None:
    container(d, id).unpause()
    ex.empty(204)


def rename(d: Any, ex: Exchange, id: str) -> None:
    name = ex.arg("name")
    if not name:
        raise ApiError(400, "rename: give the new name as ?name=")
    container(d, id).rename(name)
    ex.empty(204)


_UPDATE = {"Memory": "mem_limit", "MemorySwap": "memswap_limit", "MemoryReservation": "mem_reservation",
           "CpuShares": "cpu_shares", "CpuQuota": "cpu_quota", "CpuPeriod": "cpu_period", "NanoCpus": "nano_cpus",
           "CpusetCpus": "cpuset_cpus", "PidsLimit": "pids_limit", "RestartPolicy": "restart_policy"}


def update(d: Any, ex: Exchange, id: str) -> None:
    body = ex.json_body({}) or {}
    kwargs = {_UPDATE[k]: v for k, v in body.items() if k in _UPDATE and v not in (None, 0, "", {})}
    result = container(d, id).update(**kwargs)
    ex.json({"Warnings": result.get("Warnings") or []})


def resize(d: Any, ex: Exchange, id: str) -> None:
    c = container(d, id)
    h, w = ex.int_arg("h", 0), ex.int_arg("w", 0)
    if c.attrs["State"].get("Running") and h and w:
        c._client.call("resize", id=c.id, h=h, w=w)
    ex.empty(200)


def remove(d: Any, ex: Exchange, id: str) -> None:
    container(d, id).remove(force=ex.flag("force"), v=ex.flag("v"))
    ex.empty(204)


def prune(d: Any, ex: Exchange) -> None:
    wanted = filters(ex.arg("filters"))
    ex.json(d.engine.containers.prune(filters={"label": wanted.get("label", [])}))


# ------------------------------------------------------------------ archive


def go_file_mode(mode: int) -> int:
    """A POSIX st_mode as Go's os.FileMode, which the docker CLI reads (``IsDir()`` decides how it copies)."""
    import stat as st
    out = mode & 0o777
    kinds = {st.S_IFDIR: 1 << 31, st.S_IFLNK: 1 << 27, st.S_IFIFO: 1 << 25, st.S_IFSOCK: 1 << 24,
             st.S_IFBLK: 1 << 26, st.S_IFCHR: (1 << 26) | (1 << 21)}
    out |= kinds.get(st.S_IFMT(mode), 0)
    for bit, flag in ((st.S_ISUID, 1 << 23), (st.S_ISGID, 1 << 22), (st.S_ISVTX, 1 << 20)):
        if mode & bit:
            out |= flag
    return out


def _stat_header(stat: dict[str, Any]) -> tuple[str, str]:
    import time
    mtime = float(stat.get("mtime") or 0)
    doc = {"name": stat.get("name", ""), "size": stat.get("size", 0), "mode": go_file_mode(int(stat.get("mode", 0))),
           "mtime": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(mtime)) + f".{int((mtime % 1) * 1e9):09d}Z",
           "linkTarget": stat.get("linkTarget", "")}
    return "X-Docker-Container-Path-Stat", base64.b64encode(json.dumps(doc).encode()).decode()


def archive_head(d: Any, ex: Exchange, id: str) -> None:
    c = container(d, id)
    path = ex.arg("path") or ""
    stat = _path_stat(c, path)
    ex.empty(200, headers=[_stat_header(stat)])


def _path_stat(c: Any, path: str) -> dict[str, Any]:
    from ...containers import fsops
    if not path:
        raise ApiError(400, "archive: give ?path=")
    with c.merged_rootfs(with_mounts=True) as root:
        try:
            return dict(fsops.path_stat(root, path))
        except NotFound:
            raise ApiError(404, f"Could not find the file {path} in container {c.name}") from None


def archive_get(d: Any, ex: Exchange, id: str) -> None:
    c = container(d, id)
    path = ex.arg("path") or ""
    stat = _path_stat(c, path)
    import io
    buf = io.BytesIO()
    c.get_archive(path, buf)
    ex.send(200, buf.getvalue(), content_type="application/x-tar", headers=[_stat_header(stat)])


def archive_put(d: Any, ex: Exchange, id: str) -> None:
    c = container(d, id)
    path = ex.arg("path") or ""
    if not path:
        raise ApiError(400, "archive: give ?path=")
    import tempfile
    with tempfile.TemporaryFile() as spool:
        for chunk in ex.body_chunks():
            spool.write(chunk)
        spool.seek(0)
        try:
            c.put_archive(path, spool)
        except tarfile.TarError as e:
            raise ApiError(400, f"archive: not a tar archive: {e}") from None
        except FileNotFoundError:
            raise ApiError(404, f"Could not find the file {path} in container {c.name}") from None
    ex.empty(200)


def register(r: Router) -> None:
    r.add("POST", "/containers/create", create)
    r.add("GET", "/containers/json", list_containers)
    r.add("POST", "/containers/prune", prune)
    r.add("GET", "/containers/{id}/json", inspect)
    r.add("GET", "/containers/{id}/top", top)
    r.add("GET", "/containers/{id}/changes", changes)
    r.add("GET", "/containers/{id}/export", export)
    r.add("POST", "/containers/{id}/start", start)
    r.add("POST", "/containers/{id}/stop", stop)
    r.add("POST", "/containers/{id}/restart", restart)
    r.add("POST", "/containers/{id}/kill", kill)
    r.add("POST", "/containers/{id}/pause", pause)
    r.add("POST", "/containers/{id}/unpause", unpause)
    r.add("POST", "/containers/{id}/rename", rename)
    r.add("POST", "/containers/{id}/update", update)
    r.add("POST", "/containers/{id}/resize", resize)
    r.add("DELETE", "/containers/{id}", remove)
    r.add("HEAD", "/containers/{id}/archive", archive_head)
    r.add("GET", "/containers/{id}/archive", archive_get)
    r.add("PUT", "/containers/{id}/archive", archive_put)
