"""Docker-shaped views of an image: ``docker image inspect`` and ``docker history``.

Students compare our output with Docker's, so the keys, their capitalisation and
the order of history rows follow Docker's API (``GET /images/{name}/json`` and
``GET /images/{name}/history``).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from ..errors import SandboxError
from .images import Image, ImageStore
from .mediatypes import chain_ids

_CONFIG_KEYS = ["Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
                "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Image", "Volumes", "WorkingDir",
                "Entrypoint", "OnBuild", "Labels"]


def docker_config(config: dict[str, Any]) -> dict[str, Any]:
    """The image's ``config`` section with Docker's defaults filled in, as inspect shows it."""
    c = dict(config.get("config") or {})
    out: dict[str, Any] = {"Hostname": "", "Domainname": "", "User": c.get("User", ""),
                           "AttachStdin": False, "AttachStdout": False, "AttachStderr": False,
                           "Tty": False, "OpenStdin": False, "StdinOnce": False,
                           "Env": c.get("Env"), "Cmd": c.get("Cmd"), "Image": "",
                           "Volumes": c.get("Volumes"), "WorkingDir": c.get("WorkingDir", ""),
                           "Entrypoint": c.get("Entrypoint"), "OnBuild": c.get("OnBuild"),
                           "Labels": c.get("Labels")}
    for key, value in c.items():  # ExposedPorts, StopSignal, Healthcheck, Shell, ...
        if key not in out:
            out[key] = value
    return out


def inspect_image(images: ImageStore, image: Image) -> dict[str, Any]:
    """``docker image inspect`` for one image."""
    layer_dirs = []
    for chain_id in reversed(image.chain_ids):
        try:
            layer_dirs.append(str(images.layers.get(chain_id).path))
        except SandboxError:
            layer_dirs.append("<not unpacked>")
    comment = ""
    history = image.config.get("history") or []
    if history:
        comment = str(history[-1].get("comment", ""))
    out = {
        "Id": image.id,
        "RepoTags": list(image.tags),
        "RepoDigests": list(image.repo_digests),
        "Parent": image.meta.get("parent", ""),
        "Comment": comment,
        "Created": image.created,
        "DockerVersion": image.config.get("docker_version", ""),
        "Author": image.config.get("author", ""),
        "Config": docker_config(image.config),
        "Architecture": image.config.get("architecture", ""),
        "Variant": image.config.get("variant"),
        "Os": image.config.get("os", ""),
        "Size": image.size,
        "GraphDriver": {"Name": "overlay", "Data": {
            "LowerDir": ":".join(layer_dirs[1:]) or None,
            "UpperDir": layer_dirs[0] if layer_dirs else None}},
        "RootFS": {"Type": "layers", "Layers": image.diff_ids},
        "Metadata": {"LastTagTime": _iso(image.meta.get("last_tag_time"))},
        "Descriptor": {"mediaType": image.manifest.get("mediaType"), "digest": image.manifest_digest},
    }
    if out["Variant"] is None:  # Docker leaves it out when the platform has none
        del out["Variant"]
    return out


def _iso(ts: Any) -> str:
    if not ts:
        return "0001-01-01T00:00:00Z"
    return _dt.datetime.fromtimestamp(float(ts), _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def history(images: ImageStore, image: Image) -> list[dict[str, Any]]:
    """``docker history`` rows, newest first: Id, Created, CreatedBy, Size, Comment, Tags.

    Each history entry without ``empty_layer`` owns the next layer in ``diff_ids``;
    its size is that layer's unpacked size.  As in Docker, only the newest row
    carries the image id; the rest are ``<missing>`` (their images do not exist).
    """
    entries = list(image.config.get("history") or [])
    if not entries:  # an image without history: one row per layer
        entries = [{"created": image.created, "created_by": ""} for _ in image.diff_ids]
    sizes = []
    for chain_id in image.chain_ids:
        try:
            sizes.append(images.layers.get(chain_id).size)
        except SandboxError:
            sizes.append(0)
    rows: list[dict[str, Any]] = []
    layer = 0
    for entry in entries:
        size = 0
        if not entry.get("empty_layer"):
            size = sizes[layer] if layer < len(sizes) else 0
            layer += 1
        rows.append({"Id": "<missing>", "Created": entry.get("created", ""),
                     "CreatedBy": entry.get("created_by", ""), "Size": size,
                     "Comment": entry.get("comment", ""), "Tags": None,
                     "EmptyLayer": bool(entry.get("empty_layer"))})
    rows.reverse()
    if rows:
        rows[0]["Id"] = image.id
        rows[0]["Tags"] = list(image.tags) or None
    return rows


__all__ = ["inspect_image", "history", "docker_config", "chain_ids"]
