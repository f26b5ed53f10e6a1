"""The check pass: what a layer entry is, and the rules that refuse unsafe ones.

A layer is untrusted input (CVE-2019-14271, CVE-2018-15664 and the many "tar
slip" bugs).  :class:`Checker` simulates the layer on top of its target and
refuses, before anything is written, absolute names, ``..`` components, NUL
bytes, a path through a symlink (one made by the same tar or already in the
target), hard links out of the target or to files this layer's whiteouts
remove (:class:`~sandbox.errors.UnsafeLayerEntry`), and numbers, xattrs or
device nodes the write pass could not use, which would otherwise fail half way
(:class:`~sandbox.errors.LayerError`).  What it lets through, the write pass
(:mod:`.applier`) can do without meeting a symlink or a missing hard-link
target half way.
"""

from __future__ import annotations

import os
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import LayerError, UnsafeLayerEntry
from .format import CORRUPT_HINT, OPAQUE_MARKER, PAX_XATTR, WHITEOUT_PREFIX, xattr_allowed

__all__ = ["Checker", "Entry", "Plan", "classify", "needs_root", "split_name"]


@dataclass
class Entry:
    """One tar member: a real entry, a whiteout (comps = the victim) or an opaque marker."""

    member: tarfile.TarInfo
    comps: list[str]
    action: str  # "entry" | "whiteout" | "opaque"

    @property
    def name(self) -> str:
        return self.member.name

    @property
    def path(self) -> str:
        return "/".join(self.comps)


def split_name(name: str, entry: str, what: str = "its name") -> list[str]:
    """The components of a tar path, refusing anything that could leave the target."""
    if "\x00" in name:
        raise UnsafeLayerEntry(entry, f"{what} contains a NUL byte")
    if name.startswith("/"):
        raise UnsafeLayerEntry(entry, f"{what} is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeLayerEntry(entry, f"{what} contains a '..' component")
    return parts


def classify(member: tarfile.TarInfo) -> Entry | None:
    comps = split_name(member.name, member.name)
    if not comps:
        return None  # the root itself: its metadata belongs to the engine, not the layer
    base = comps[-1]
    if base == OPAQUE_MARKER:
        return Entry(member, comps[:-1], "opaque")
    if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
        return None  # other aufs metadata (.wh..wh.plnk, ...): never content
    if base.startswith(WHITEOUT_PREFIX):
        victim = base[len(WHITEOUT_PREFIX):]
        if victim in ("", ".", ".."):
            raise UnsafeLayerEntry(member.name, "a whiteout must name a file")
        return Entry(member, comps[:-1] + [victim], "whiteout")
    return Entry(member, comps, "entry")


def _member_kind(member: tarfile.TarInfo) -> str:
    """What an entry makes, as the checker tracks it: dir, symlink or other."""
    if member.isdir():
        return "dir"
    if member.issym():
        return "symlink"
    if member.isreg() or member.islnk() or member.isdev():
        return "other"
    raise LayerError(f"cannot apply layer entry {member.name!r}: unsupported tar entry type "
                     f"{member.type!r}", hint=CORRUPT_HINT)


def _disk_kind(target: Path, rel: str) -> str | None:
    try:
        st = os.lstat(os.path.join(target, rel))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise LayerError(f"cannot check {rel} in {target}: {e.strerror}") from e
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    return "symlink" if stat.S_ISLNK(st.st_mode) else "other"


@dataclass
class Plan:
    """What the check pass learned: the removals to make and the bytes to write."""

    whiteouts: set[str] = field(default_factory=set)
    opaques: set[str] = field(default_factory=set)
    size: int = 0
    #: (offset, name, type) of every member checked, in order: the write pass
    #: must meet exactly these, or it would write something never checked.
    members: list[tuple[int, str, bytes]] = field(default_factory=list)


class Checker:
    """The first pass: simulate the layer on top of ``target`` and refuse unsafe entries.

    It is conservative: whatever it lets through, the write pass can do without
    meeting a symlink or a missing hard-link target half way.

    ``empty_target`` says the target was empty when the layer started and only
    this layer writes into it (a new layer directory), so everything in it is
    already in ``kinds`` and the disk is never consulted: the check then gives
    the same answers while the write pass fills the target entry by entry.
    """

    def __init__(self, target: Path, mode: str, *, empty_target: bool = False) -> None:
        self.target = target
        self.mode = mode
        self.empty_target = empty_target
        self.kinds: dict[str, str] = {}  # what this layer has made so far, by path
        self.plan = Plan()
        self.is_root = os.geteuid() == 0
        #: (entry name, target path) of hard links to files found in the target, not
        #: made by this layer: checked in finish(), once every whiteout is known.
        self.disk_links: list[tuple[str, str]] = []

    def check(self, entry: Entry) -> None:
        if entry.action == "opaque":
            self._check_dirs(entry.name, entry.comps)
            self.plan.opaques.add(entry.path)
            return
        self._check_dirs(entry.name, entry.comps[:-1])
        if entry.action == "whiteout":
            self.plan.whiteouts.add(entry.path)
            if self.mode == "overlay":
                self._set_kind(entry.path, "other")
            return
        member = entry.member
        kind = _member_kind(member)
        _check_fields(entry)
        if member.islnk():
            self._check_hardlink(entry)
        elif member.issym() and "\x00" in member.linkname:
            raise UnsafeLayerEntry(entry.name, "its symlink target contains a NUL byte")
        elif (member.ischr() or member.isblk()) and not self.is_root:
            raise needs_root(entry.name)
        if member.isreg():
            self.plan.size += member.size
        self._set_kind(entry.path, kind)

    def _set_kind(self, path: str, kind: str) -> None:
        """Record what ``path`` is now; a directory replaced by a non-directory takes its
        children with it (the write pass removes it recursively)."""
        if self.kinds.get(path) == "dir" and kind != "dir":
            below = path + "/"
            for stale in [p for p in self.kinds if p.startswith(below)]:
                del self.kinds[stale]
        self.kinds[path] = kind

    def _check_dirs(self, name: str, comps: list[str]) -> bool:
        """Every prefix of ``comps`` is, or will be made, a real directory.

        Returns whether the target's own content below still counts (false once
        a prefix is missing on disk or replaced by this layer).
        """
        on_disk = not self.empty_target
        for i in range(1, len(comps) + 1):
            prefix = "/".join(comps[:i])
            disk = _disk_kind(self.target, prefix) if on_disk else None
            kind = self.kinds.get(prefix) or disk or "dir"
            if kind == "symlink":
                raise UnsafeLayerEntry(name, f"{prefix!r} is a symlink; nothing is written through one")
            if kind != "dir":
                raise LayerError(f"cannot apply layer entry {name!r}: {prefix!r} is not a directory",
                                 hint=CORRUPT_HINT)
            if disk != "dir":
                on_disk = False
                self.kinds.setdefault(prefix, "dir")  # the write pass will mkdir it
        return on_disk

    def _check_hardlink(self, entry: Entry) -> None:
        link = split_name(entry.member.linkname, entry.name, "its hard link target")
        if not link:
            raise UnsafeLayerEntry(entry.name, "a hard link may not point at the root")
        on_disk = self._check_dirs(entry.name, link[:-1])
        path = "/".join(link)
        kind = self.kinds.get(path)
        if kind is None and on_disk:
            kind = _disk_kind(self.target, path)
            if kind is not None and self.mode == "merge":
                self.disk_links.append((entry.name, path))
        if kind is None:
            raise _missing_link_target(entry.name, entry.member.linkname)
        if kind == "dir":
            raise UnsafeLayerEntry(entry.name, "a hard link may not point at a directory")

    def finish(self) -> None:
        """Refuse hard links to target files that this layer's own whiteouts remove.

        The write pass removes what a whiteout or opaque marker hides at the first
        entry under it, wherever the marker stands in the tar, so such a file may
        be gone by the time the link is made.  Only a file this layer wrote before
        the link (then in ``kinds``, never recorded here) is sure to be there.
        """
        for name, path in self.disk_links:
            if self._hidden(path):
                raise _missing_link_target(name, path, "this layer's whiteouts remove it")

    def _hidden(self, path: str) -> bool:
        """Whether a whiteout of ``path`` or an ancestor, or an opaque ancestor, hides it."""
        comps = path.split("/")
        prefixes = ["/".join(comps[:i]) for i in range(len(comps) + 1)]
        return any(p in self.plan.whiteouts for p in prefixes[1:]) or \
            any(p in self.plan.opaques for p in prefixes[:-1])


def _missing_link_target(name: str, linkname: str, why: str = "") -> LayerError:
    return LayerError(f"cannot apply layer entry {name!r}: its hard link target {linkname!r} "
                      f"does not exist{f' ({why})' if why else ''}", hint=CORRUPT_HINT)


_MAX_ID = 2**32 - 2  # (uid_t)-1 means "no change" to chown
_MAX_TIME = 2**62 // 1_000_000_000  # utimensat's nanoseconds must fit in 64 bits


def _check_fields(entry: Entry) -> None:
    """Numbers and xattr names the write pass could not use would fail half way."""
    m = entry.member
    problems = [what for what, ok in (
        ("owner", 0 <= m.uid <= _MAX_ID and 0 <= m.gid <= _MAX_ID),
        ("mtime", -_MAX_TIME < m.mtime < _MAX_TIME),
        ("device number", 0 <= m.devmajor < 2**32 and 0 <= m.devminor < 2**32),
        ("xattr name", not any("\x00" in k or k == PAX_XATTR for k in m.pax_headers
                               if k.startswith(PAX_XATTR))),
    ) if not ok]
    if problems:
        raise LayerError(f"cannot apply layer entry {entry.name!r}: invalid {', '.join(problems)}",
                         hint=CORRUPT_HINT)
    _check_xattrs(entry)


_XATTR_NAME_MAX = 255  # linux/limits.h: longer names fail with ERANGE
_XATTR_SIZE_MAX = 65536  # longer values fail with E2BIG
#: vfs_cap_data revisions the kernel accepts (security/commoncap.c validheader()),
#: by the high byte of magic_etc, with the size each needs.  Revision 1 (12 bytes)
#: is refused with EINVAL by every kernel since 4.14, so it is refused here too.
_CAP_SIZES = {0x02000000: 20, 0x03000000: 24}


def _check_xattrs(entry: Entry) -> None:
    """Refuse now the xattrs setxattr(2) would refuse half way through the write pass."""
    for key, text in entry.member.pax_headers.items():
        name = key[len(PAX_XATTR):]
        if not key.startswith(PAX_XATTR) or not xattr_allowed(name):
            continue  # never set, so never a failure
        why = _xattr_problem(name, text.encode("utf-8", "surrogateescape"))
        if why:
            raise LayerError(f"cannot apply layer entry {entry.name!r}: invalid xattr "
                             f"{name[:64]!r}: {why}", hint=CORRUPT_HINT)


def _xattr_problem(name: str, value: bytes) -> str | None:
    if len(os.fsencode(name)) > _XATTR_NAME_MAX:
        return f"its name is longer than {_XATTR_NAME_MAX} bytes"
    if len(value) > _XATTR_SIZE_MAX:
        return f"its value is longer than {_XATTR_SIZE_MAX} bytes"
    if name == "security.capability":
        magic = int.from_bytes(value[:4], "little") & 0xFF000000
        if len(value) < 4 or _CAP_SIZES.get(magic) != len(value):
            return "not a valid vfs_cap_data (revision 2 or 3)"
    return None


def needs_root(name: str) -> LayerError:
    return LayerError(f"cannot create device node {name!r}: creating device nodes needs root",
                      hint="run as root, or use an image without device files in its layers")
