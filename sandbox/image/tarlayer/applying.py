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

from ...errors import LayerError
from .. import streams
from .applier import Applier, fs_errors
from .checking import Checker, Plan, classify
from .format import CORRUPT_HINT
from .reading import LayerTar

__all__ = ["apply_layer"]


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
