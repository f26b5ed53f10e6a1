"""The build context: which files COPY and ADD may see, and what their content is.

The context is a directory on this machine (Docker sends it to its daemon as
a tar; we read it in place, which is why a large context costs nothing until
a COPY names it).  ``.dockerignore`` hides files from COPY exactly as Docker's
pattern rules say:

* one pattern per line; ``#`` starts a comment line; patterns are cleaned
  (``./a//b/`` is ``a/b``) and a leading ``/`` is dropped;
* ``*`` matches within one path component, ``?`` one character, ``[a-z]`` a
  class, ``**`` any number of directories (also none), ``\\`` escapes;
* a pattern that matches a directory hides everything below it;
* ``!pattern`` brings matching files back; the *last* matching line wins.

A context (or a stage's root file system for ``COPY --from``) belongs to
whoever wrote it, and the engine may run as root: a symlink ``leak ->
/etc/shadow`` or a directory swapped for a link while the build reads it
must never make the engine read the host.  So sources are resolved as
BuildKit resolves them, with the root as ``/``: a symlink is followed
*inside* the root (:func:`~sandbox.kernel.open_in_root`, openat2
``RESOLVE_IN_ROOT``), ``..`` cannot climb above it, and ``COPY ../secret``
is refused outright (the classic builder's "forbidden path outside the build
context").  A source that *is* a symlink, also a wildcard's match, is
followed (BuildKit's ``FollowSymlinks``); a symlink *inside* a copied
directory is copied as a symlink.  Everything below a source is read from
descriptors opened with ``O_NOFOLLOW`` from its parent's descriptor, never
by name, so a link swapped in after a check is seen as a link, not followed.

``.dockerignore`` is applied to the path a source really has in the context
(after its symlinks), as well as to the name it was given by: Docker never
sends an ignored file to its builder, so no symlink can reach one.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import os
import posixpath
import re
import stat
from collections.abc import Iterator
from pathlib import Path

from ..errors import BuildError
from ..plain import Record

WILDCARD_CHARS = "*?["


class _Pattern(Record):
    """One ``.dockerignore`` line, cleaned, and its regex."""
    _fields = ("text", "exclusion", "regex")

    def __init__(self, text: str, exclusion: bool, regex: re.Pattern[str]) -> None:
        self.text = text
        self.exclusion = exclusion
        self.regex = regex


def _compile(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                out.append(".*" if i >= n else "(.*/)?")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            if i + 1 < n:
                i += 1
                out.append(re.escape(pattern[i]))
            else:
                out.append(r"\\")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(r"\[")
            else:
                body = pattern[i + 1:end]
                if body.startswith("!") or body.startswith("^"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("(/.*)?$")
    return re.compile("".join(out), re.DOTALL)


class DockerIgnore:
    """The patterns of a ``.dockerignore`` file."""

    def __init__(self, lines: list[str] | None = None) -> None:
        self.patterns: list[_Pattern] = []
        for raw in lines or []:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclusion = line.startswith("!")
            if exclusion:
                line = line[1:].strip()
            cleaned = posixpath.normpath(line).lstrip("/") if line else ""
            if cleaned in ("", "."):
                if not exclusion:
                    cleaned = "**"
                else:
                    continue
            try:
                regex = _compile(cleaned)
            except re.error:
                regex = re.compile("^" + re.escape(cleaned) + "(/.*)?$")
            self.patterns.append(_Pattern(cleaned, exclusion, regex))

    @classmethod
    def read(cls, context: Path | int) -> DockerIgnore:
        """The context's ``.dockerignore`` (none: no patterns), a symlink followed inside the context only."""
        try:
            text = read_in_root(context, ".dockerignore")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return cls()
        except OSError as e:
            raise BuildError(f"cannot read .dockerignore in the build context: {e.strerror}",
                             hint="a symlink in the context may point to itself; fix or remove .dockerignore") from None
        return cls(text.decode("utf-8", "replace").splitlines())

    def excluded(self, rel: str) -> bool:
        """Is context-relative ``rel`` (``a/b.txt``) hidden from the build?"""
        matched = False
        for p in self.patterns:
            if p.regex.match(rel):
                matched = not p.exclusion
        return matched

    @property
    def has_exceptions(self) -> bool:
        """Is there a ``!`` line?  Then an excluded directory may still hold visible files."""
        return any(p.exclusion for p in self.patterns)


_PATH = os.O_PATH | os.O_CLOEXEC
_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC


def fd_path(fd: int) -> str:
    """A name for what ``fd`` refers to (the same inode), as :func:`sandbox.kernel.fd_path`."""
    return f"/proc/self/fd/{fd}"


def open_in_root(root_fd: int, name: str, flags: int = os.O_PATH, *, follow_last: bool = True) -> int:
    """:func:`sandbox.kernel.open_in_root`, with a shortcut for an entry of the root itself.

    A name that is one plain component (``Dockerfile``, ``files``) opened with
    ``O_NOFOLLOW`` from the root's descriptor cannot lead anywhere but that
    entry, so it needs no resolver unless it is a symlink (then the resolver
    follows it inside the root, as before).  The shortcut keeps the kernel's
    resolver, and ctypes with it, out of a build that copies nothing or only
    top-level names: a full cache hit of such a Dockerfile is a few milliseconds.
    """
    if "/" not in name and name != "..":
        try:
            fd = os.open(name or ".", flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=root_fd)
        except OSError as e:
            # O_NOFOLLOW on a symlink: ELOOP, or ENOTDIR with O_DIRECTORY; the resolver decides
            if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
        else:
            if not follow_last or not stat.S_ISLNK(os.fstat(fd).st_mode):
                return fd
            os.close(fd)                 # O_PATH opened the symlink itself: resolve it below
    from ..kernel import resolve  # imported on use (see above)
    return resolve.open_in_root(root_fd, name, flags, follow_last=follow_last)


def read_in_root(root: Path | int, name: str) -> bytes:
    """The content of ``name`` below the directory ``root`` (a path or a descriptor), its
    symlinks followed inside ``root`` only; OSError as ``open`` raises it."""
    root_fd = os.open(root, _DIR) if not isinstance(root, int) else os.dup(root)
    try:
        fd = open_in_root(root_fd, name, os.O_RDONLY)
    finally:
        os.close(root_fd)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file", name)
        return f.read()


class Source(Record):
    """One matched source: ``rel`` as the Dockerfile names it (a wildcard: the match), ``real`` the
    path it has in its root once its symlinks are followed, and whether that is a directory."""
    _fields = ("rel", "real", "is_dir")

    def __init__(self, rel: str, real: str, is_dir: bool) -> None:
        self.rel = rel
        self.real = real
        self.is_dir = is_dir

    @property
    def name(self) -> str:
        """The name it is copied under (a followed symlink keeps its own name, as in Docker)."""
        return posixpath.basename(self.rel)


#: One entry below a directory source: (its path below the source, an O_PATH descriptor of it,
#: valid until the walk goes on, and its lstat).
Entry = tuple[str, int, os.stat_result]


class SourceTree:
    """A directory COPY reads from: the build context, or a stage's or image's root.

    Holds a descriptor of the root from construction to :meth:`close` (use it
    as a context manager): what is read is always below that directory, also
    when its path is renamed or replaced meanwhile.
    """

    def __init__(self, root: Path | int, ignore: DockerIgnore | None = None, *, what: str = "build context",
                 shown: str | None = None) -> None:
        self.root_fd = os.dup(root) if isinstance(root, int) else os.open(root, _DIR)
        self.ignore = ignore or DockerIgnore()
        self.what = what
        #: the root as the hint names it (the context's path; None for a stage's scratch mount)
        self.shown = shown if shown is not None or isinstance(root, int) else str(root)

    def close(self) -> None:
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1

    def __enter__(self) -> SourceTree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- finding sources -----------------------------------------------------------

    def resolve(self, src: str, *, ins: str) -> list[Source]:
        """The sources ``src`` names (a path or a wildcard pattern); at least one, or BuildError."""
        norm = posixpath.normpath("/" + src.lstrip("/")) if src.startswith("/") else posixpath.normpath(src)
        if norm == ".." or norm.startswith("../"):
            raise BuildError(f"forbidden path outside the {self.what}: {src}",
                             hint=f"a build only sees its {self.what}; move the file into it "
                                  "or pass a larger context")
        rel = norm.lstrip("/")
        rel = "" if rel == "." else rel
        if any(c in rel for c in WILDCARD_CHARS):
            found = self._glob(rel, src, ins)
            if not found:
                raise BuildError(f"{ins}: no source files were specified: nothing in the {self.what} "
                                 f"matches {src}", hint="check the pattern" +
                                 (", and .dockerignore" if self.what == "build context" else ""))
            return found
        with self.opened(Source(rel, rel, False), src=src, ins=ins) as (_, st, real):
            return [Source(rel, real, stat.S_ISDIR(st.st_mode))]

    @contextlib.contextmanager
    def opened(self, source: Source, *, src: str | None = None, ins: str = "COPY"
               ) -> Iterator[tuple[int, os.stat_result, str]]:
        """(an O_PATH descriptor, its stat, its real path) of ``source``, resolved again inside the
        root with ``.dockerignore`` checked; BuildError when it is not there (any more)."""
        src = source.rel if src is None else src
        try:
            fd = open_in_root(self.root_fd, source.rel, _PATH)
        except (FileNotFoundError, NotADirectoryError):
            raise self._not_found(source.rel, src, ins) from None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise BuildError(f"{ins}: {src}: too many levels of symbolic links in the {self.what}",
                                 hint="a symlink on the way points (through others) to itself; "
                                      "fix the links or copy the files themselves") from None
            raise BuildError(f"{ins}: cannot open {src} in the {self.what}: {e.strerror}") from None
        try:
            st = os.fstat(fd)
            real = self._real(fd, src, ins)
            is_dir = stat.S_ISDIR(st.st_mode)
            if not (self._visible(source.rel, is_dir) and self._visible(real, is_dir)):
                raise self._not_found(source.rel, src, ins)
            yield fd, st, real
        finally:
            os.close(fd)

    def _real(self, fd: int, src: str, ins: str) -> str:
        """Where the (already confined) descriptor ``fd`` is below the root: for .dockerignore."""
        top, here = os.readlink(fd_path(self.root_fd)), os.readlink(fd_path(fd))
        if here == top:
            return ""
        prefix = top.rstrip("/") + "/"
        if not here.startswith(prefix):
            raise BuildError(f"{ins}: {src}: the {self.what} changed while the build read it",
                             hint="do not move or change the files while a build copies them")
        return here[len(prefix):]

    def _visible(self, rel: str, is_dir: bool) -> bool:
        """Not hidden by .dockerignore (a hidden directory still shows the files a ``!`` line brings back)."""
        return not rel or not self.ignore.excluded(rel) or (is_dir and self.ignore.has_exceptions)

    def _not_found(self, rel: str, src: str, ins: str) -> BuildError:
        ignored = " or excluded by .dockerignore" if self.what == "build context" else ""
        link = self._first_link(rel)
        if link is not None:
            hint = (f"{link[0]} is a symlink to {link[1]}: symlinks are followed inside the {self.what} "
                    f"as if it were /, never out of it; copy the file itself into the {self.what}")
        elif src.startswith("/"):
            hint = f"an absolute source is looked up from the root of the {self.what}" + (
                f" ({self.shown}{src})" if self.shown else "")
        else:
            hint = f"is {src} inside the {self.what}" + (f" ({self.shown})?" if self.shown else "?")
        return BuildError(f"{ins}: file not found in {self.what}{ignored}: {src}", hint=hint)

    def _first_link(self, rel: str) -> tuple[str, str] | None:
        """The first symlink on the way to ``rel`` (as written) and its target, for the hint."""
        parts = [p for p in rel.split("/") if p]
        for i in range(1, len(parts) + 1):
            try:
                fd = open_in_root(self.root_fd, "/".join(parts[:i]), _PATH, follow_last=False)
            except OSError:
                return None
            try:
                if stat.S_ISLNK(os.fstat(fd).st_mode):
                    return "/".join(parts[:i]), os.readlink("", dir_fd=fd)
            finally:
                os.close(fd)
        return None

    def _glob(self, pattern: str, src: str, ins: str) -> list[Source]:
        """Docker's wildcard rule (fsutil's ResolveWildcards): the part before the first wildcard is
        resolved (symlinks followed inside the root), then each further component is matched
        against real directory entries (none followed); each match that is a symlink is followed."""
        parts = pattern.split("/")
        first = next(i for i, p in enumerate(parts) if any(c in p for c in WILDCARD_CHARS))
        prefix, rest = parts[:first], parts[first:]
        try:
            with self.opened(Source("/".join(prefix), "", True), ins=ins) as (fd, st, real):
                if not stat.S_ISDIR(st.st_mode):
                    return []
                matches = self._match(fd, real, rest)
        except BuildError:
            return []
        found = []
        for sub in matches:
            match = Source("/".join(prefix + [sub]), "", False)
            with self.opened(Source(posixpath.join(real, sub), "", False), src=match.rel, ins=ins) \
                    as (_, st, real_match):
                found.append(Source(match.rel, real_match, stat.S_ISDIR(st.st_mode)))
        return found

    def _match(self, top: int, real: str, patterns: list[str]) -> list[str]:
        """Paths below the directory ``top`` whose components match ``patterns`` one by one."""
        out: list[str] = []
        stack = [(os.dup(top), "", 0)]
        try:
            while stack:
                dfd, sub, depth = stack.pop()
                try:
                    for name in reversed(_names(dfd)):
                        if not fnmatch.fnmatchcase(name, patterns[depth]):
                            continue
                        child = f"{sub}/{name}" if sub else name
                        full = f"{real}/{child}" if real else child
                        try:
                            cfd = os.open(name, _PATH | os.O_NOFOLLOW, dir_fd=dfd)
                        except FileNotFoundError:
                            continue
                        is_dir = stat.S_ISDIR(os.fstat(cfd).st_mode)
                        if depth + 1 == len(patterns):
                            os.close(cfd)
                            if not self.ignore.excluded(full):
                                out.append(child)
                        elif is_dir and self._visible(full, True):
                            stack.append((cfd, child, depth + 1))
                        else:
                            os.close(cfd)
                finally:
                    os.close(dfd)
        finally:
            for dfd, _, _ in stack:
                os.close(dfd)
        return sorted(out)

    def entries(self, top: int, real: str) -> Iterator[Entry]:
        """Every visible entry below the directory ``top`` (real path ``real``), sorted, parents first.

        Each entry is opened with ``O_NOFOLLOW`` from its parent's descriptor and
        only a real directory is descended into, through its descriptor: a
        symlink swapped in for a directory after it was listed is yielded as
        the symlink it now is, never followed.  Symlink loops cannot hang it.
        """
        stack = [(os.dup(top), "", real, iter(_names(top)))]
        try:
            while stack:
                dfd, sub, dreal, names = stack[-1]
                name = next(names, None)
                if name is None:
                    os.close(dfd)
                    stack.pop()
                    continue
                try:
                    fd = os.open(name, _PATH | os.O_NOFOLLOW, dir_fd=dfd)
                except FileNotFoundError:
                    continue        # removed since it was listed
                child = f"{sub}/{name}" if sub else name
                creal = f"{dreal}/{name}" if dreal else name
                st = os.fstat(fd)
                hidden = self.ignore.excluded(creal)
                if not hidden:
                    try:
                        yield child, fd, st
                    except BaseException:
                        os.close(fd)
                        raise
                if stat.S_ISDIR(st.st_mode) and (not hidden or self.ignore.has_exceptions):
                    try:
                        listing = _names(fd)
                    except OSError:
                        os.close(fd)
                        continue
                    stack.append((fd, child, creal, iter(listing)))
                else:
                    os.close(fd)
        finally:
            for dfd, _, _, _ in stack:
                os.close(dfd)

    # -- hashing -----------------------------------------------------------------

    def digest(self, sources: list[Source]) -> tuple[str, dict[str, str]]:
        """One digest for the sources' names, types, modes and content, plus a digest per file.

        Times and owners are left out (Docker's cache ignores mtimes too), so a
        fresh checkout of the same files hits the cache.  Read from
        descriptors, as the copy will be.
        """
        files: dict[str, str] = {}
        for src in sources:
            with self.opened(src) as (fd, st, real):
                if stat.S_ISDIR(st.st_mode):
                    files[src.rel or "."] = _entry_digest(fd, st)
                    for sub, cfd, cst in self.entries(fd, real):
                        files[posixpath.join(src.rel, sub)] = _entry_digest(cfd, cst)
                else:
                    files[src.rel] = _entry_digest(fd, st)
        import hashlib  # here: a cache hit without COPY or ADD never loads OpenSSL (see mediatypes.sha256_hex)
        h = hashlib.sha256()
        for rel in sorted(files):
            h.update(rel.encode("utf-8", "surrogateescape") + b"\0" + files[rel].encode() + b"\n")
        return "sha256:" + h.hexdigest(), files


def _names(dir_fd: int) -> list[str]:
    """The sorted names in the directory ``dir_fd`` (an O_PATH descriptor is fine)."""
    listing = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        return sorted(os.listdir(listing))
    finally:
        os.close(listing)


def _file_sha(fd: int) -> str:
    """The sha256 of the file ``fd`` holds, read once (plain ``os.read``: a context's files are
    mostly small, and a buffered file object per file was most of a COPY's cache check)."""
    import hashlib
    h = hashlib.sha256()
    rfd = os.open(fd_path(fd), os.O_RDONLY | os.O_CLOEXEC)   # the inode the descriptor holds, not a name
    try:
        while chunk := os.read(rfd, 1 << 20):
            h.update(chunk)
    finally:
        os.close(rfd)
    return h.hexdigest()


def _entry_digest(fd: int, st: os.stat_result) -> str:
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        return f"l{mode:o}:{os.readlink('', dir_fd=fd)}"
    if stat.S_ISDIR(st.st_mode):
        return f"d{mode:o}"
    if stat.S_ISREG(st.st_mode):
        return f"f{mode:o}:{_file_sha(fd)}"
    return f"o{st.st_mode:o}"
