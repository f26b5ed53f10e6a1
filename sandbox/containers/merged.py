"""A container's file system as one directory, for ``cp``, ``export`` and the archive routes.

A running container's rootfs is mounted already (or reached through its own
``/proc/PID/root`` view); a stopped one gets a temporary overlay of its own
layers, or a bind of its vfs copy, that goes again with one detach.  Imported
only by the verbs that use it, so a cold ``sandbox run`` does not load it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import kernel
from ..errors import NotFound
from . import setup
from .fsops import opened

if TYPE_CHECKING:
    from ..image.store import Store


@contextlib.contextmanager
def merged_rootfs(store: Store, attrs: dict[str, Any], cdir: Path, *, writable: bool = False,
                  with_mounts: bool = False) -> Iterator[Path]:
    """The container's file system as one directory: the live mount, or a temporary one.

    A stopped container gets a temporary overlay of its own layers: read-only
    (the writable layer as the top lower dir) unless ``writable``, when its
    writable layer is the upper dir again, as it will be at the next start.
    A vfs container's rootfs is its own directory, used as it is (bound
    to a temporary place only to bind its mounts into).

    ``with_mounts`` (``cp``, as Docker's): the container's volumes and bind
    mounts, and its /etc/hostname, /etc/hosts and /etc/resolv.conf, are
    where the container sees them.  A running container is reached through
    ``/proc/PID/root``, its own view (tmpfs included); for a stopped one they
    are bound into the temporary overlay.  ``export`` leaves them out, as
    ``docker export`` does.
    """
    rootfs = cdir / "rootfs"
    state = attrs["State"]
    vfs = attrs.get("Driver") == "vfs"
    if state.get("Running") and (vfs or setup.is_mounted(rootfs)):
        view = Path(f"/proc/{state.get('Pid')}/root")
        yield view if with_mounts and state.get("Pid") and os.path.isdir(view) else rootfs
        return
    if vfs and not with_mounts:
        yield rootfs    # a vfs rootfs is a plain directory, the container's own
        return
    with store.scratch("cp-") as scratch:
        target = scratch / "merged"
        target.mkdir()
        if vfs:
            # A bind of the container's own copy, so its mounts can be bound into it
            # and all go again with one detach, as the overlay view's do.
            kernel.mount(str(rootfs), target, None, kernel.MS_BIND)
        else:
            _mount_layers(store, attrs, cdir, target, writable)
        try:
            if vfs and not writable:
                kernel.mount(None, target, None, kernel.MS_BIND | kernel.MS_REMOUNT | kernel.MS_RDONLY)
            if with_mounts:
                _bind_container_mounts(target, attrs, writable)
            yield target
        finally:
            kernel.umount(target, kernel.MNT_DETACH)   # the binds below go with it


def _mount_layers(store: Store, attrs: dict[str, Any], cdir: Path, target: Path, writable: bool) -> None:
    """A stopped overlay container's layers on ``target``: its upper dir writable again, or read-only on top."""
    lowers = setup.lower_dirs(store, cdir, attrs["Sandbox"]["Layers"])
    if writable:
        options = (f"lowerdir={':'.join(lowers)},upperdir={cdir / 'upper'},"
                   f"workdir={cdir / 'work'}")
        setup.mount_overlay(target, options)
    else:
        setup.mount_overlay(target, "lowerdir=" + ":".join([str(cdir / "upper")] + lowers),
                            kernel.MS_RDONLY)


def _bind_container_mounts(target: Path, attrs: dict[str, Any], writable: bool) -> None:
    """Bind a stopped container's volumes, bind mounts and /etc files into ``target``.

    Parents before children, each destination resolved inside ``target`` (an
    image symlink cannot send a bind outside it); read-only ones stay read-only.
    """
    binds = [(m["Destination"], m["Source"], bool(m.get("RW", True)))
             for m in attrs.get("Mounts") or [] if m.get("Type") in ("bind", "volume") and m.get("Source")]
    for key, dest in (("HostnamePath", "/etc/hostname"), ("HostsPath", "/etc/hosts"),
                      ("ResolvConfPath", "/etc/resolv.conf")):
        if attrs.get(key) and os.path.exists(attrs[key]):
            binds.append((dest, attrs[key], True))
    for dest, source, rw in sorted(binds, key=lambda b: os.path.normpath(b[0]).count("/")):
        if not os.path.exists(source):
            continue   # gone from the host
        try:
            # mounted on the descriptor's /proc/self/fd name: the inode resolved in the container
            with opened(target, dest, follow_last=True) as fd:
                kernel.mount(source, kernel.fd_path(fd), None, kernel.MS_BIND | kernel.MS_REC)
            if not (rw and writable):
                with opened(target, dest, follow_last=True) as fd:   # now the mount's top
                    kernel.mount(None, kernel.fd_path(fd), None,
                                 kernel.MS_BIND | kernel.MS_REMOUNT | kernel.MS_RDONLY)
        except NotFound:
            continue   # the mount point is made at the next start
