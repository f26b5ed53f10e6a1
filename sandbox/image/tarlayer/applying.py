"""Applying a layer onto a directory: a check pass that writes nothing, then the write pass.

:func:`apply_layer` is how a layer meets a tree that already holds something
(``merge`` onto a container's root filesystem, ``COPY`` of an archive in a
build, ``import``): every entry is checked (:mod:`.checking`) before anything
is written (:mod:`.applier`), so an unsafe or broken layer leaves the target
untouched.  The layer is read twice.  A plain, seekable one is simply read
again; any other is copied uncompressed to an unnamed temp file during the
check, and the write pass must meet exactly the members the check saw.
"""

from __future__ import annotations

import contextlib
import os
import tarfile
import tempfile
from pathlib import Path
from typing import IO, BinaryIO

from ...errors import BlobCorrupt, LayerError
from .. import streams
from .applier import Applier, fs_errors
from .checking import Checker, Plan, classify
from .format import CHUNK, CORRUPT_HINT
from .reading import LayerTar, open_layer, read_errors

__all__ = ["apply_layer", "unpack_layer"]


def apply_layer(stream: BinaryIO | str | Path, target: Path, *, mode: str = "merge",
                check_only: bool = False) -> int:
    """Apply a layer tar (plain, gzip or zstd) onto ``target``; returns the bytes of file content.

    ``mode="merge"`` flattens onto a rootfs: whiteouts remove what lower layers
    put in ``target``.  ``mode="overlay"`` unpacks one layer into its own
    directory for overlayfs: whiteouts become 0/0 devices and opaque xattrs.
    Every entry is checked before anything is written, so an unsafe or broken
    layer leaves ``target`` untouched.  ``check_only`` stops after the check.

    The layer is read twice.  A plain, seekable one is simply read again; any
    other is copied uncompressed to an unnamed temp file during the check.
    """
    if mode not in ("merge", "overlay"):
        raise ValueError(f"apply_layer mode must be 'merge' or 'overlay', not {mode!r}")
    target = Path(target)
    with contextlib.ExitStack() as stack:
        raw = _open_source(stream, stack)
        start = raw.tell() if streams.seekable(raw) else None
        spool = None if check_only else stack.enter_context(_spool_file(target))
        plan, teed = _check_layer(raw, target, mode, spool)
        if check_only:
            return plan.size
        if teed:
            assert spool is not None
            spool.seek(0)
            return _write_layer(spool, target, mode, plan)  # type: ignore[arg-type]
        assert start is not None  # only a plain, seekable layer is not spooled
        raw.seek(start)
        return _write_layer(raw, target, mode, plan)
    raise AssertionError("unreachable")  # for mypy: an ExitStack may swallow exceptions


def _open_source(stream: BinaryIO | str | os.PathLike[str], stack: contextlib.ExitStack) -> BinaryIO:
    if not isinstance(stream, (str, os.PathLike)):
        return stream
    try:
        return stack.enter_context(open(stream, "rb"))
    except OSError as e:
        raise LayerError(f"cannot open layer {os.fspath(stream)}: {e.strerror}") from e


def _spool_file(target: Path) -> IO[bytes]:
    """An unnamed temp file on the target's file system, which must hold the layer anyway
    (/tmp may be a small tmpfs).  With O_TMPFILE no name ever appears beside the target."""
    where = target.parent
    while not where.is_dir() and where != where.parent:
        where = where.parent
    try:
        return tempfile.TemporaryFile(dir=where)
    except OSError:
        return tempfile.TemporaryFile()


def _check_layer(raw: BinaryIO, target: Path, mode: str,
                 spool: IO[bytes] | None) -> tuple[Plan, bool]:
    checker = Checker(target, mode)
    with LayerTar(raw, spool) as layer:
        for member in layer.members():
            checker.plan.members.append(_fingerprint(member))
            entry = classify(member)
            if entry is not None:
                checker.check(entry)
        if layer.teed:
            layer.drain()
    checker.finish()
    return checker.plan, layer.teed


def _fingerprint(member: tarfile.TarInfo) -> tuple[int, str, bytes]:
    return member.offset, member.name, member.type


def _same_member(plan: Plan, index: int, member: tarfile.TarInfo | None) -> None:
    """Refuse to go on when the write pass reads another archive than the check pass did.

    Both passes read the same uncompressed bytes, so this never fires unless
    something (a second decompression, a changed file) makes them differ; it is
    the guard that keeps the write pass from applying entries never checked.
    """
    expected = plan.members[index] if index < len(plan.members) else None
    found = _fingerprint(member) if member is not None else None
    if expected != found:
        raise LayerError(f"layer changed between its check and its application: member "
                         f"{index} is {found!r}, the check saw {expected!r}", hint=CORRUPT_HINT)


def _write_layer(raw: BinaryIO, target: Path, mode: str, plan: Plan) -> int:
    with fs_errors(str(target)):
        target.mkdir(parents=True, exist_ok=True)
        root_fd = os.open(target, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    applier = Applier(root_fd, mode, plan)
    try:
        # plain: ``raw`` is the spool (already uncompressed) or a plain seekable layer
        with LayerTar(raw, plain=True) as layer:
            index = -1
            for index, member in enumerate(layer.members()):
                _same_member(plan, index, member)
                entry = classify(member)
                if entry is not None:
                    applier.apply(entry)
            _same_member(plan, index + 1, None)
        applier.finish_dirs()
        return applier.size
    finally:
        applier.close()
        os.close(root_fd)


def unpack_layer(blob: BinaryIO, target: Path, *, digest: str, diff_id: str) -> int:
    """Unpack a layer blob into ``target``, a new empty directory, reading the blob once.

    This is how a pulled, loaded or built layer becomes a layer directory.  The
    blob is read once and decompressed once, and in that one pass its bytes are
    hashed against ``digest``, the tar stream against ``diff_id``, and every
    entry is checked by the same rules as :func:`apply_layer` and then written
    at once.  No check needs the disk, since the target starts empty and only
    this layer writes into it (``Checker(empty_target=True)``), and the write
    pass walks every path with ``O_NOFOLLOW`` from a descriptor of the target,
    so an entry is refused before it is written and nothing lands outside.

    A refused or damaged layer leaves the entries already written in ``target``:
    the caller unpacks into a staging directory nobody else sees
    (``layers/<hex>.incomplete``) and removes it on any error.  When the pass
    fails, the blob and its tar stream are still read to their ends, so that a
    damaged blob is reported as :class:`BlobCorrupt` (its digest first, then its
    diff_id) rather than as the entry it broke: the order of checking first.
    """
    target = Path(target)
    if os.path.lexists(target) and os.listdir(target):
        raise ValueError(f"unpack_layer needs a new, empty directory: {target} is not empty")
    with fs_errors(str(target)):
        target.mkdir(parents=True, exist_ok=True)
        root_fd = os.open(target, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    checker = Checker(target, "overlay", empty_target=True)
    applier = Applier(root_fd, "overlay", checker.plan)
    raw = streams.HashingReader(blob)
    failure: BaseException | None = None
    decoded = True
    try:
        with contextlib.closing(open_layer(raw)) as decompressed:  # type: ignore[arg-type]
            plain = streams.HashingReader(decompressed)
            try:
                _check_and_write(plain, checker, applier)
            except (LayerError, OSError) as e:
                failure = e
            try:
                _drain(plain)  # the tar's end blocks count for the diff_id
            except LayerError as e:
                failure, decoded = failure or e, False
        # after the decompressor is closed: a zstd process's feeder thread reads ``raw`` too
        _drain(raw)
    finally:
        applier.close()
        os.close(root_fd)
    if raw.digest != digest:
        raise BlobCorrupt(digest, "blob", actual=raw.digest) from failure
    if decoded and plain.digest != diff_id:
        raise BlobCorrupt(diff_id, "layer", actual=plain.digest,
                          hint="the layer does not match the diff_id in its image config") from failure
    if failure is not None:
        raise failure
    return applier.size


def _check_and_write(plain: streams.HashingReader, checker: Checker, applier: Applier) -> None:
    """The one pass: each entry is checked, then written, before the next is read."""
    # plain: the stream is decompressed already; sniffing it again would gunzip a polyglot
    with LayerTar(plain, plain=True) as layer:  # type: ignore[arg-type]
        for member in layer.members():
            entry = classify(member)
            if entry is not None:
                checker.check(entry)
                applier.apply(entry)
    checker.finish()
    applier.finish_dirs()


def _drain(stream: streams.HashingReader) -> None:
    """Read to the end, so that the hash covers every byte."""
    with read_errors():
        while stream.read(CHUNK):
            pass
