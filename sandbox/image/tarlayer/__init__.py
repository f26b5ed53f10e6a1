"""Layer tars: written deterministically, read without ever writing outside.

This package is the one place where image layers meet tar.  Callers import
from here; each topic lives in one module:

=================  ==========================================================
``format``         whiteout names, the xattr allowlist, ``SOURCE_DATE_EPOCH``
``writing``        a tree or an overlay upper dir as a deterministic tar;
                   the vfs driver's diff of two trees (``tree_diff``)
``reading``        the uncompressed stream of a plain, gzip or zstd layer,
                   and its members read once, forward
``checking``       the check pass: the rules that refuse unsafe entries
``applier``        the write pass: every path walked with ``O_NOFOLLOW``
``applying``       ``apply_layer``: check everything, then write;
                   ``unpack_layer``: one pass into a new layer directory
=================  ==========================================================

Imports point one way: ``format`` ← ``writing``; ``format`` ← ``reading`` ←
``applier`` ← ``applying``, with ``checking`` beside ``reading``.  Nothing here
imports the store.

A layer is untrusted input (CVE-2019-14271, CVE-2018-15664 and the many "tar
slip" bugs).  Absolute names, ``..`` components, NUL bytes, a path through a
symlink (one made by the same tar or already in the target) and hard links out
of the target are refused with :class:`~sandbox.errors.UnsafeLayerEntry`, and
every path is walked one component at a time with ``O_NOFOLLOW`` from a
descriptor of the target, so even a race cannot lead outside.

Whiteouts follow the OCI image spec, layer "Representing Changes":
https://github.com/opencontainers/image-spec/blob/main/layer.md#whiteouts
"""

from __future__ import annotations

from .applying import apply_layer, unpack_layer
from .format import OPAQUE_MARKER, WHITEOUT_PREFIX, XATTR_ALLOWLIST, source_date_epoch
from .reading import open_layer
from .writing import TreeDiff, tree_changes, tree_diff, write_overlay_upper, write_tree

__all__ = [
    "OPAQUE_MARKER",
    "TreeDiff",
    "WHITEOUT_PREFIX",
    "XATTR_ALLOWLIST",
    "apply_layer",
    "open_layer",
    "source_date_epoch",
    "tree_changes",
    "tree_diff",
    "unpack_layer",
    "write_overlay_upper",
    "write_tree",
]
