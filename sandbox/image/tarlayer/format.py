"""The layer format's names and rules, shared by the writer and the applier.

Whiteouts follow the OCI image spec, layer "Representing Changes":
https://github.com/opencontainers/image-spec/blob/main/layer.md#whiteouts
overlayfs's own markers (a 0/0 character device for a deletion, the
``*.overlay.opaque`` xattr for an opaque directory) are in the kernel's
Documentation/filesystems/overlayfs.rst.  Both directions read these constants,
so what the writer turns into a whiteout is exactly what the applier turns back.
"""

from __future__ import annotations

import os

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
#: xattrs a layer keeps: file capabilities and the user namespace.  Overlay's
#: own xattrs (trusted.overlay.*, user.overlay.*) describe one mount's upper dir
#: and must never travel in a tar; security.selinux is a host labelling matter.
XATTR_ALLOWLIST: tuple[str, ...] = ("security.capability", "user.")
#: overlay's own bookkeeping, the kernel's and fuse-overlayfs's (``user.fuseoverlayfs.origin``,
#: ``.opaque``): never part of a layer.
XATTR_DENYLIST: tuple[str, ...] = ("user.overlay.", "user.fuseoverlayfs.")
OVERLAY_OPAQUE = ("trusted.overlay.opaque", "user.overlay.opaque", "user.fuseoverlayfs.opaque")
#: overlay features whose upper dir does not hold the whole change on its own.
OVERLAY_INDIRECT = ("trusted.overlay.redirect", "trusted.overlay.metacopy",
                    "user.overlay.redirect", "user.overlay.metacopy")

CHUNK = 1 << 20
PAX_XATTR = "SCHILY.xattr."
CORRUPT_HINT = "the layer is truncated or corrupt; rebuild the image or pull it again"


def source_date_epoch() -> int | None:
    """``SOURCE_DATE_EPOCH`` as an int, or None when unset or not a valid time.

    https://reproducible-builds.org/specs/source-date-epoch/
    """
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    try:
        epoch = int(value)
    except ValueError:
        return None
    return epoch if epoch >= 0 else None


def xattr_allowed(name: str) -> bool:
    """Whether an xattr travels in a layer (read when writing, set when applying)."""
    if name.startswith(XATTR_DENYLIST):
        return False
    return any(name == p or (p.endswith(".") and name.startswith(p)) for p in XATTR_ALLOWLIST)
