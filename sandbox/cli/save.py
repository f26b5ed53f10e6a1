"""``sandbox save``: write images to a docker-archive (or OCI archive) tar."""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from typing import Any

from ..errors import UsageError


def register(sub: Any, name: str = "save") -> None:
    p = sub.add_parser(name, help="Save one or more images to a tar archive (streamed to STDOUT by default)")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-o", "--output", help="write to a file instead of STDOUT")
    p.add_argument("--format", choices=["docker", "oci"], default="docker",
                   help="docker-archive (what 'docker load' reads, default) or an OCI image layout tar")
    p.set_defaults(func=run)


def run(engine: Any, args: Any, out: Any) -> int:
    if args.output:
        save_to_file(engine, args.images, args.output, args.format)
        return 0
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # a notebook's output is text, not a byte stream
        raise UsageError("cannot write an archive to this output", hint="use -o FILE")
    if sys.stdout.isatty():
        raise UsageError("cowardly refusing to save to a terminal", hint="use -o FILE or redirect STDOUT")
    sys.stdout.flush()
    engine.images.save(args.images, buffer, format=args.format)
    buffer.flush()
    return 0


def save_to_file(engine: Any, images: list[str], output: str, format: str) -> None:
    """Write the archive to ``output`` all or nothing, even when this process is killed.

    The bytes go to an unnamed file in the output's directory (``O_TMPFILE``,
    open(2)), which is given a name only once complete: linked in through
    /proc/self/fd as ``OUTPUT.partial`` and renamed over ``output`` at once.  So
    a ``kill -9`` mid-write leaves nothing behind, where a named temporary file
    would stay forever.  A file system without ``O_TMPFILE`` gets the named
    ``OUTPUT.partial`` from the start; the next save to the same file replaces it.
    """
    tmp = f"{output}.partial"
    directory = os.path.dirname(os.path.abspath(output))
    try:
        fd = os.open(directory, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o666)
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            raise
        fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY | os.O_CLOEXEC, 0o666)
        named = True
    else:
        named = False
    try:
        with open(fd, "wb") as f:
            engine.images.save(images, f, format=format)
            f.flush()
            if not named:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)  # a leftover of a save killed between link and rename
                _link(f.fileno(), tmp)
        os.replace(tmp, output)  # no half-written archive under the real name
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _link(fd: int, path: str) -> None:
    """Give the unnamed file ``fd`` the name ``path``: linkat(2) with AT_SYMLINK_FOLLOW on /proc/self/fd.

    (A directory descriptor is passed only so that os.link calls linkat; plain
    link(2) would try to link the /proc symlink itself.)
    """
    dir_fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.link(f"/proc/self/fd/{fd}", os.path.basename(path), dst_dir_fd=dir_fd, follow_symlinks=True)
    finally:
        os.close(dir_fd)
