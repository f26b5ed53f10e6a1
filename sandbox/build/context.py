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

Sources are resolved inside the context (symlinks followed, but never out of
it), and ``COPY ../secret`` is refused: a build sees only its context.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import posixpath
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator

from ..errors import BuildError

WILDCARD_CHARS = "*?["


@dataclass(frozen=True)
class _Pattern:
    text: str
    exclusion: bool
    regex: re.Pattern[str]


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
    def read(cls, context: Path) -> DockerIgnore:
        path = context / ".dockerignore"
        try:
            return cls(path.read_text(errors="replace").splitlines())
        except (FileNotFoundError, NotADirectoryError):
            return cls()

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


@dataclass
class Source:
    """One matched source: ``full`` on disk, ``rel`` inside its root, ``name`` as written."""
    full: str
    rel: str
    is_dir: bool


class SourceTree:
    """A directory COPY reads from: the build context, or a stage's or image's root."""

    def __init__(self, root: Path, ignore: DockerIgnore | None = None, *, what: str = "build context") -> None:
        self.root = Path(root)
        self.ignore = ignore or DockerIgnore()
        self.what = what

    # -- finding sources -----------------------------------------------------------

    def resolve(self, src: str, *, ins: str, line_error: type[BuildError] | None = None) -> list[Source]:
        """The sources ``src`` names (a path or a wildcard pattern); at least one, or BuildError."""
        norm = posixpath.normpath("/" + src.lstrip("/")) if src.startswith("/") else posixpath.normpath(src)
        rel = norm.lstrip("/")
        if rel == ".." or rel.startswith("../") or (not src.startswith("/") and
                                                     posixpath.normpath(src).startswith("..")):
            raise BuildError(f"forbidden path outside the {self.what}: {src}",
                             hint="a build only sees its context directory; move the file into it "
                                  "or pass a larger context")
        rel = "" if rel == "." else rel
        if any(c in rel for c in WILDCARD_CHARS):
            found = [s for s in self._glob(rel)]
            if not found:
                raise BuildError(f"{ins}: no source files were specified: nothing in the {self.what} "
                                 f"matches {src}", hint="check the pattern, and .dockerignore")
            return found
        full = self._scoped(rel)
        hidden = bool(rel) and self.ignore.excluded(rel) and not (
            os.path.isdir(full) and self.ignore.has_exceptions)
        if not os.path.lexists(full) or hidden:
            raise BuildError(f"{ins}: file not found in {self.what} or excluded by .dockerignore: {src}",
                             hint=f"is {src} inside the {self.what} ({self.root})?")
        return [Source(full, rel, os.path.isdir(full))]

    def _scoped(self, rel: str) -> str:
        """``rel`` inside the root with symlinks followed, never leaving the root."""
        from ..runtime.paths import secure_join
        return secure_join(str(self.root), "/" + rel) if rel else str(self.root)

    def _glob(self, pattern: str) -> Iterator[Source]:
        """Docker matches a wildcard against every path in the context, one component at a time."""
        parts = pattern.split("/")
        depth = len(parts)
        for rel, full, is_dir in self.walk(""):
            if rel.count("/") + 1 != depth:
                continue
            names = rel.split("/")
            if all(fnmatch.fnmatchcase(n, p) for n, p in zip(names, parts)):
                yield Source(full, rel, is_dir)

    def walk(self, rel_top: str) -> Iterator[tuple[str, str, bool]]:
        """Every visible path below ``rel_top`` (sorted, depth first), as (rel, full, is_dir)."""
        top = self._scoped(rel_top) if rel_top else str(self.root)
        stack = [(top, rel_top)]
        while stack:
            full, rel = stack.pop()
            try:
                entries = sorted(os.scandir(full), key=lambda e: e.name, reverse=True)
            except (NotADirectoryError, FileNotFoundError):
                continue
            for entry in entries:
                child = f"{rel}/{entry.name}" if rel else entry.name
                is_dir = entry.is_dir(follow_symlinks=False)
                hidden = self.ignore.excluded(child)
                if is_dir and (not hidden or self.ignore.has_exceptions):
                    stack.append((entry.path, child))
                if not hidden:
                    yield child, entry.path, is_dir

    # -- hashing -----------------------------------------------------------------

    def digest(self, sources: list[Source]) -> tuple[str, dict[str, str]]:
        """One digest for the sources' names, types, modes and content, plus a digest per file.

        Times and owners are left out (Docker's cache ignores mtimes too), so a
        fresh checkout of the same files hits the cache.
        """
        files: dict[str, str] = {}
        for src in sources:
            if src.is_dir:
                files[src.rel or "."] = _entry_digest(src.full)
                for rel, full, _ in self.walk(src.rel):
                    files[rel] = _entry_digest(full)
            else:
                files[src.rel] = _entry_digest(src.full)
        h = hashlib.sha256()
        for rel in sorted(files):
            h.update(rel.encode("utf-8", "surrogateescape") + b"\0" + files[rel].encode() + b"\n")
        return "sha256:" + h.hexdigest(), files


def _file_sha(full: str) -> str:
    h = hashlib.sha256()
    with open(full, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()


def _entry_digest(full: str) -> str:
    st = os.lstat(full)
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        return f"l{mode:o}:{os.readlink(full)}"
    if stat.S_ISDIR(st.st_mode):
        return f"d{mode:o}"
    if stat.S_ISREG(st.st_mode):
        return f"f{mode:o}:{_file_sha(full)}"
    return f"o{st.st_mode:o}"

