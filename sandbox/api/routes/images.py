"""Images: list, inspect, history, tag, delete, prune; pull and import (``/images/create``), push,
save (``/images/get``), load, search, and ``/commit``.

Progress streams are Docker's JSON messages, which is what the registry code
emits already (``{"status": ..., "id": ..., "progressDetail": ...}``); a
failure in the middle of a stream becomes an ``{"errorDetail": ...}``
message, the way the docker CLI expects to see it.  ``X-Registry-Auth``
(base64 JSON credentials from ``docker login``) is honoured for the one
request it comes with.
"""

from __future__ import annotations

import base64
import json
import tempfile
from typing import Any

from ...errors import ImageNotFound, RegistryError, SandboxError
from ..http import ApiError, Exchange
from ..router import Router, message_of
from ..shapes import filters, image_summary
from .common import Writer, container


def _image(d: Any, name: str) -> Any:
    try:
        return d.engine.images.get(name)
    except ImageNotFound:
        raise ApiError(404, f"No such image: {name}") from None


def list_images(d: Any, ex: Exchange) -> None:
    wanted = filters(ex.arg("filters"))
    images = d.engine.images.list(all=ex.flag("all"))
    for ref in wanted.get("reference", []):
        images = [i for i in images if i in d.engine.images.list(name=ref)]
    if "dangling" in wanted:
        dangling = wanted["dangling"][0].lower() in ("true", "1")
        images = [i for i in d.engine.images.list(all=True) if (not i.tags) == dangling]
    for label in wanted.get("label", []):
        k, _, v = label.partition("=")
        images = [i for i in images if k in (i.labels or {}) and (not v or i.labels[k] == v)]
    uses: dict[str, int] = {}
    for r in d.engine.containers.records.all():
        uses[r["Image"]] = uses.get(r["Image"], 0) + 1
    ex.json([image_summary(d.engine, i, uses) for i in images])


def inspect(d: Any, ex: Exchange, name: str) -> None:
    _image(d, name)
    ex.json(d.engine.images.inspect(name))


def history(d: Any, ex: Exchange, name: str) -> None:
    from ..shapes import unix_time
    _image(d, name)
    rows = d.engine.images.history(name)
    ex.json([{"Id": r["Id"], "Created": unix_time(r.get("Created") or ""), "CreatedBy": r.get("CreatedBy", ""),
              "Tags": r.get("Tags"), "Size": int(r.get("Size") or 0), "Comment": r.get("Comment", "")}
             for r in rows])


def tag(d: Any, ex: Exchange, name: str) -> None:
    _image(d, name)
    repo = ex.arg("repo")
    if not repo:
        raise ApiError(400, "repository name must have at least one component")
    d.engine.images.tag(name, f"{repo}:{ex.arg('tag') or 'latest'}")
    ex.empty(201)


def remove(d: Any, ex: Exchange, name: str) -> None:
    _image(d, name)
    ex.json(d.engine.images.remove(name, force=ex.flag("force")))


def prune(d: Any, ex: Exchange) -> None:
    wanted = filters(ex.arg("filters"))
    dangling = (wanted.get("dangling") or ["true"])[0].lower() in ("true", "1")
    result = d.engine.images.prune(all=not dangling)
    ex.json({"ImagesDeleted": result.get("ImagesDeleted") or [], "SpaceReclaimed": result.get("SpaceReclaimed", 0)})


def _credentials(ex: Exchange) -> tuple[str, str] | None:
    raw = ex.headers.get("x-registry-auth")
    if not raw:
        return None
    try:
        doc = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, TypeError):
        return None
    if isinstance(doc, dict) and doc.get("username"):
        return str(doc["username"]), str(doc.get("password") or "")
    return None


def _error_message(out: Any, e: SandboxError) -> None:
    out.json({"errorDetail": {"message": message_of(e)}, "error": message_of(e)})


def create(d: Any, ex: Exchange) -> None:
    """``docker pull`` (``fromImage``) and ``docker import`` (``fromSrc``)."""
    if ex.arg("fromSrc") is not None:
        _import(d, ex)
        return
    image = ex.arg("fromImage")
    if not image:
        raise ApiError(400, "give fromImage (pull) or fromSrc (import)")
    tag_ = ex.arg("tag")
    name = f"{image}@{tag_}" if tag_ and tag_.startswith("sha256:") else f"{image}:{tag_}" if tag_ else image
    from ...reference import parse
    from ...registry import distribution
    from ...registry.transport import Transport
    ref = parse(name)
    out = ex.stream()
    try:
        transport = Transport(ref.registry, credentials=_credentials(ex))
        distribution.pull(d.engine.image_store, name, platform=ex.arg("platform") or None, progress=out.json,
                          transport=transport)
    except SandboxError as e:
        _error_message(out, e)
    out.end()


def _import(d: Any, ex: Exchange) -> None:
    source = ex.arg("fromSrc")
    if source != "-":
        raise ApiError(400, "import: only fromSrc=- (the request body) is supported")
    repo, tag_ = ex.arg("repo"), ex.arg("tag")
    target = f"{repo}:{tag_ or 'latest'}" if repo else None
    out = ex.stream()
    with tempfile.TemporaryFile() as spool:
        for chunk in ex.body_chunks():
            spool.write(chunk)
        spool.seek(0)
        try:
            image = d.engine.images.import_(spool, tag=target, changes=ex.query.get("changes", []),
                                            message=ex.arg("message"))
            out.json({"status": image.id})
        except SandboxError as e:
            _error_message(out, e)
    out.end()


def push(d: Any, ex: Exchange, name: str) -> None:
    from ...reference import parse
    from ...registry import distribution
    from ...registry.transport import Transport
    tag_ = ex.arg("tag")
    full = f"{name}:{tag_}" if tag_ else name
    _image(d, full)
    out = ex.stream()
    try:
        ref = parse(full)
        result = distribution.push(d.engine.image_store, full, progress=out.json,
                                   transport=Transport(ref.registry, credentials=_credentials(ex)))
        out.json({"status": f"{ref.tag}: digest: {result.digest} size: {result.size}"})
        out.json({"progressDetail": {}, "aux": {"Tag": ref.tag, "Digest": result.digest, "Size": result.size}})
    except SandboxError as e:
        _error_message(out, e)
    out.end()


def save(d: Any, ex: Exchange, name: str | None = None) -> None:
    names = [name] if name else ex.query.get("names", [])
    if not names:
        raise ApiError(400, "give the images to save (?names=...)")
    for n in names:
        _image(d, n)
    out = ex.stream(content_type="application/x-tar")
    d.engine.images.save(names, Writer(out))
    out.end()


def load(d: Any, ex: Exchange) -> None:
    quiet = ex.flag("quiet")
    out = ex.stream()
    with tempfile.TemporaryFile() as spool:
        for chunk in ex.body_chunks():
            spool.write(chunk)
        spool.seek(0)
        try:
            for image in d.engine.images.load(spool):
                for t in image.tags or [image.id]:
                    label = "Loaded image" if t != image.id else "Loaded image ID"
                    out.json({"stream": f"{label}: {t}\n"} if not quiet else {"stream": f"{label}: {t}\n"})
        except SandboxError as e:
            _error_message(out, e)
    out.end()


def search(d: Any, ex: Exchange) -> None:
    """``docker search REGISTRY/TERM``: the repositories of a registry's catalog whose name has TERM."""
    from ...registry.transport import Transport
    term = ex.arg("term") or ""
    limit = ex.int_arg("limit", 25) or 25
    registry, _, wanted = term.rpartition("/") if "/" in term else ("docker.io", "", term)
    if "." not in registry and ":" not in registry and registry != "localhost":
        registry, wanted = "docker.io", term
    try:
        resp = Transport(registry).request("GET", "/v2/_catalog?n=1000", scope="registry:catalog:*")
        repos = (resp.json() or {}).get("repositories") or []
    except RegistryError as e:
        raise ApiError(500, f"search {registry}: {message_of(e)}") from None
    found = [r for r in repos if wanted.lower() in r.lower()][:limit]
    ex.json([{"name": f"{registry}/{r}", "description": "", "star_count": 0, "is_official": False,
              "is_automated": False} for r in found])


def commit(d: Any, ex: Exchange) -> None:
    c = container(d, ex.arg("container") or "")
    body = ex.json_body({}) or {}
    repo, tag_ = ex.arg("repo"), ex.arg("tag")
    changes = ex.query.get("changes", [])
    image = c.commit(repository=repo or None, tag=tag_ or None, message=ex.arg("comment") or None,
                     author=ex.arg("author") or None, changes=changes or None, conf=body or None,
                     pause=ex.flag("pause", True))
    ex.json({"Id": image.id}, status=201)


def register(r: Router) -> None:
    r.add("GET", "/images/json", list_images)
    r.add("POST", "/images/create", create)
    r.add("POST", "/images/load", load)
    r.add("POST", "/images/prune", prune)
    r.add("GET", "/images/search", search)
    r.add("GET", "/images/get", save)
    r.add("GET", "/images/{name*}/json", inspect)
    r.add("GET", "/images/{name*}/history", history)
    r.add("GET", "/images/{name*}/get", save)
    r.add("POST", "/images/{name*}/tag", tag)
    r.add("POST", "/images/{name*}/push", push)
    r.add("DELETE", "/images/{name*}", remove)
    r.add("POST", "/commit", commit)
