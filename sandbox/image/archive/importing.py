"""``import``: a root filesystem tarball becomes a one-layer image, as ``docker import`` does.

The input is applied into a scratch directory (which refuses entries escaping
it) and written out again through :mod:`..tarlayer`, so the layer depends on
the tree, not on the order, times or umask it was made with: the same tree
gives the same diff_id and, under ``SOURCE_DATE_EPOCH``, the same image id on
every machine.
"""

from __future__ import annotations

import gzip
import lzma
import os
import tarfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO
from collections.abc import Iterable

from ... import reference as _ref
from ...errors import ArchiveError, InvalidReference, LayerError, UnsafeLayerEntry
from .. import tarlayer
from ..images import Image, ImageStore, new_config, now_rfc3339
from ..layers import write_layer_blob
from .changes import apply_changes
from .common import cause

__all__ = ["import_rootfs"]

_IMPORT_HINT = ("import expects a root filesystem tarball (plain, gzip or zstd); "
                "to load an image archive made by save, use 'sandbox load'")


def import_rootfs(images: ImageStore, stream: BinaryIO, *, tag: str | None = None,
                  changes: Iterable[str] = (), message: str | None = None, source_name: str = "-") -> Image:
    """``docker import``: a root filesystem tarball (plain, gzip or zstd) becomes a one-layer image.

    The tar is applied into a temp dir (which refuses entries escaping it) and
    written out again by :func:`tarlayer.write_overlay_upper`: sorted entries,
    numeric owners, mtimes clamped to ``SOURCE_DATE_EPOCH``.  So the layer
    depends on the tree, not on the order, times or umask it was made with.
    ``changes`` are Dockerfile lines (see :func:`apply_changes`); ``message``
    replaces the history comment "Imported from <source_name>", as in Docker.
    """
    if tag is not None:
        ref = _ref.parse(tag)
        if ref.tag is None:
            raise InvalidReference(f"cannot import as {tag!r}: a tag cannot contain a digest", hint="use NAME[:TAG]")
    config: dict[str, Any] = {}
    apply_changes(config, changes)  # a bad change fails before any work
    store = images.store
    with store.transaction():
        with store.scratch("import-") as work:
            root = work / "rootfs"
            root.mkdir()
            os.chmod(root, 0o755)  # not the umask's choice: "/" is part of the layer
            _apply_rootfs(stream, root, source_name)
            epoch = tarlayer.source_date_epoch()
            layer = write_layer_blob(store, lambda out: tarlayer.write_overlay_upper(root, out, epoch=epoch))
        created = now_rfc3339()
        history = [{"created": created, "comment": message or f"Imported from {source_name}"}]
        image_config = new_config([layer], history, config=config, created=created)
        return images.create(image_config, [layer], tags=[tag] if tag else [])


def _apply_rootfs(stream: BinaryIO, root: Path, source: str) -> None:
    try:
        tarlayer.apply_layer(stream, root, mode="overlay")
    except UnsafeLayerEntry:
        raise
    except (LayerError, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile) as e:
        raise ArchiveError(f"cannot import {source}: it is not a tar archive ({cause(e)})",
                           hint=_IMPORT_HINT) from None
    if (root / "manifest.json").is_file() or (root / "oci-layout").is_file():
        raise ArchiveError(f"cannot import {source}: it is an image archive (it has "
                           f"{'manifest.json' if (root / 'manifest.json').is_file() else 'oci-layout'}), "
                           "not a root filesystem",
                           hint="to load an image archive made by save, use 'sandbox load'")

