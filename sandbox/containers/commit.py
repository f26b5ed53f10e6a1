"""``docker commit``: the container's writable layer becomes a new image layer.

The layer is the overlay upper directory written as an OCI layer tar
(overlay's whiteouts become ``.wh.`` files, opaque directories
``.wh..wh..opq``), which is why the init layer sits *below* it: the mount
points for /etc/hosts or /proc never reach an image.  A vfs container has no
upper directory: its rootfs is compared with the init layer over its image
(:mod:`sandbox.image.vfs`) and the change written as the same tar.  The new config is the
container's own (its command, environment, working directory ...), with
``-c`` changes applied on top, as Docker does.  By default the container is
frozen while its layer is read, so the layer is a consistent snapshot.
"""

from __future__ import annotations

import contextlib
import copy
import os
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import SandboxError, UsageError

if TYPE_CHECKING:
    from ..image.images import Image, ImageStore
    from ..supervisor.client import Client

#: Config keys that go from a container into the committed image (docker's list).
IMAGE_KEYS = ("Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
              "ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck", "Image",
              "Volumes", "WorkingDir", "Entrypoint", "OnBuild", "Labels", "StopSignal")


def commit(images: ImageStore, client: Client, rec: dict[str, Any], container_dir: str | os.PathLike[str], *,
           repository: str | None = None, tag: str | None = None, message: str | None = None,
           author: str | None = None, changes: Any = None, conf: dict[str, Any] | None = None,
           pause: bool = True) -> Image:
    """The container recorded as ``rec`` (its inspect document, just read) as a new image in ``images``.

    ``client`` talks to the supervisor, which freezes a running container
    while its writable layer (``container_dir``/upper, or its vfs rootfs) is read.
    """
    from ..image.archive import apply_changes
    from ..image.images import new_config, now_rfc3339
    from ..image.layers import LayerBlob, write_layer_blob
    from .setup import command_line

    store = images.store
    cid = str(rec["Id"])
    base = images.get(rec["Image"])
    config = {k: copy.deepcopy(v) for k, v in rec["Config"].items() if k in IMAGE_KEYS}
    config.pop("Image", None)
    config.pop("Hostname", None)
    if conf:
        config.update(conf)
    change_list = [changes] if isinstance(changes, str) else list(changes or [])
    try:
        apply_changes(config, change_list)
    except SandboxError as e:
        raise UsageError(Exception.__str__(e), hint=e.hint) from None
    target = None
    if repository:
        target = f"{repository}:{tag}" if tag else repository
    cdir = Path(container_dir)
    frozen = False
    if pause and rec["State"].get("Running") and not rec["State"].get("Paused"):
        client.call("commit_pause", id=cid, freeze=True)
        frozen = True
    # A commit that fails (a full disk while its layer is unpacked) leaves no layer blob behind.
    with images.tidy_on_failure(), store.transaction():
        try:
            blob = write_layer_blob(store, container_layer(images, rec, cdir)[1])
        finally:
            if frozen:
                with contextlib.suppress(SandboxError):
                    client.call("commit_pause", id=cid, freeze=False)
        history = {"created": now_rfc3339(), "created_by": command_line(rec["Config"])}
        if message:
            history["comment"] = message
        if author:
            history["author"] = author
        image_config = new_config([blob], [history], config=config, author=author, base=base.config)
        image_config.pop("container_config", None)
        layers = [LayerBlob(diff_id, d.digest, d.size, d.media_type)
                  for diff_id, d in zip(base.diff_ids, base.layers)] + [blob]
        return images.create(image_config, layers, tags=[target] if target else [])


def container_layer(images: ImageStore, rec: dict[str, Any], cdir: Path) -> tuple[bool, Callable[[Any], None]]:
    """The container's changes: (whether there are any, a function writing them as a layer tar).

    overlay: its upper directory, as it is.  vfs: its rootfs compared with the
    init layer over its image's base tree (``image.vfs.rootfs_diff``), written
    as the same tar an upper directory holding that change gives.  The caller
    holds ``store.transaction()`` (the base tree is made again if it went).
    """
    from ..image import tarlayer, vfs
    if rec.get("Driver") != "vfs":
        upper = cdir / "upper"
        return any(os.scandir(upper)), lambda out: tarlayer.write_overlay_upper(upper, out)
    chain = list(rec["Sandbox"]["Layers"])
    base = images.layers.base_tree(chain) if chain else None
    diff = vfs.rootfs_diff(base, cdir / "init", cdir / "rootfs")
    return bool(diff.changed or diff.deleted), lambda out: vfs.write_diff(cdir / "rootfs", diff, out)
