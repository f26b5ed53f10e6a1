"""Read-only questions from cold clients: a new ``sandbox ps``, ``images`` or ``inspect``.

A new process that loads the engine spends most of its life importing it
(the container set-up, the runtime's spec, the image stack, pathlib); the
supervisor has all of it loaded already, holds every container's record in
memory (it is the one that writes them), and opens the image store on its
first create by name.  So :mod:`sandbox.cli.query` asks here and only
formats the answer, with the same code as the full path.

The answers stream, one item per packet (``{"ok": true, "result": ITEM}``)
and then ``{"exit": 0}``, so a listing of many containers is not bound by
the size of one packet.  An item that does not fit into one packet, or a
store whose recovery has slow work to do, ends the stream with ``{"exit":
1}`` instead: the client then takes the full path, which does it itself.
"""

from __future__ import annotations

import os
from typing import Any

from ...containers.setup import command_line
from .. import protocol
from ..conn import STREAMING, Conn
from ..core import Core


def op_containers(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    """Every container's record, newest first, or only the one ``ref`` names (name, id or id prefix).

    Each item is ``{"Record": record, "Command": ps's COMMAND column}``: the
    column is worked out here by :func:`command_line`, whose module a cold
    client should not load.  ``ContainerNotFound`` and ``AmbiguousReference``
    for a ``ref`` are raised before anything streams, as a plain error reply.
    """
    if "ref" in msg:
        boxes = [core.box(str(msg["ref"]))]
    else:
        boxes = sorted(core.boxes.values(), key=lambda b: str(b.rec.get("Created", "")), reverse=True)
    return _stream(conn, [{"Record": b.rec, "Command": command_line(b.rec["Config"])} for b in boxes])


def op_images(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    """Every image, newest first, as :func:`sandbox.image.images.summary` shapes it for ``images``."""
    if not _recovered(core):
        return _stream(conn, None)
    from ...image.images import summary
    return _stream(conn, [summary(image) for image in core.images.list(all=True)])


def op_image_inspect(core: Core, conn: Conn, msg: dict[str, Any]) -> Any:
    """``docker image inspect`` of the image ``name`` names (``ImageNotFound`` as an error reply)."""
    if not _recovered(core):
        return _stream(conn, None)
    from ...image.inspect import inspect_image
    images = core.images
    return _stream(conn, [inspect_image(images, images.get(str(msg["name"])))])


def _recovered(core: Core) -> bool:
    """The store's recovery, which the full path runs at its ``Store()`` open; False: it has slow work.

    A client killed mid-write leaves ingest files, ``*.incomplete`` layers or
    scratch directories behind, and the next command that opens the store
    clears them (the image store's design: recovery at every open).  Unlinking
    a few files is quick; removing a half-unpacked layer or a scratch tree can
    take seconds, too long for the single-threaded supervisor, so then the
    client takes the full path and recovers the store itself.  (A live
    writer's layer or scratch directory counts too: the listing is then only
    slower, never wrong.)
    """
    store = core.store
    if any(".incomplete" in e.name for e in os.scandir(store.layers_dir)) or \
            any(e.name.endswith(".lock") for e in os.scandir(store.tmp_dir)):
        return False
    store.recover()
    return True


def _stream(conn: Conn, items: list[Any] | None) -> Any:
    """``items`` one per packet, then ``{"exit": 0}``; None or an item too large: ``{"exit": 1}``."""
    packets = [protocol.encode({"ok": True, "result": item}) for item in items or []]
    if items is None or any(len(p) > protocol.MAX_PACKET for p in packets):
        conn.end_stream({"exit": 1})   # the client reads it all itself (the full path)
        return STREAMING
    for packet in packets:
        conn.send_packet(packet)
    conn.end_stream({"exit": 0})
    return STREAMING


HANDLERS = {"containers": op_containers, "images": op_images, "image_inspect": op_image_inspect}
