"""Image references: ``[registry/]path[:tag][@digest]``, parsed the way Docker does.

This follows the grammar of github.com/distribution/reference (``regexp.go``)
and its normalisation (``normalize.go``, ``ParseNormalizedNamed`` followed by
``TagNameOnly``), so that a name means the same image here as in ``docker``::

    busybox                    -> docker.io/library/busybox:latest
    myorg/app:v1               -> docker.io/myorg/app:v1
    localhost:5000/app@sha256:… -> localhost:5000/app@sha256:…  (no tag added)

Grammar (``[\\w]`` is ASCII ``[A-Za-z0-9_]``)::

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ registry "/" ] path
    registry   := host [ ":" port ]          host is a DNS name or [IPv6]
    path       := component ( "/" component )*
    component  := [a-z0-9]+ ( ( [._] | "__" | "-"+ ) [a-z0-9]+ )*
    tag        := [\\w][\\w.-]{0,127}
    digest     := algorithm ":" hex

The first ``/``-separated part is a registry only if it looks like a host
(contains ``.`` or ``:``, or is ``localhost``); otherwise ``myorg/app`` would be
read as a registry called ``myorg``.
"""

from __future__ import annotations

import re
from .errors import InvalidReference
from .plain import FrozenRecord

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"

#: Old name of Docker Hub's registry; Docker rewrites it to ``docker.io``.
_LEGACY_DEFAULT_REGISTRY = "index.docker.io"
#: Docker Hub keeps single-component ("official") images under ``library/``.
_OFFICIAL_PREFIX = "library/"
#: distribution/reference's NameTotalLengthMax, counted on the normalised name.
_NAME_MAX = 255

_FORM = "write it as [registry/]name[:tag][@digest], e.g. 'busybox:1.36' or 'ghcr.io/org/app:v1'"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_REGISTRY_RE = re.compile(
    rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_ALGORITHM_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*")
#: Hex length of each digest algorithm the OCI image spec registers.
_DIGEST_HEX_LEN = {"sha256": 64, "sha384": 96, "sha512": 128}
_IMAGE_ID_RE = re.compile(r"[a-f0-9]{64}")
_ID_PREFIX_RE = re.compile(r"(?:sha256:)?[a-f0-9]{1,64}")


class Reference(FrozenRecord):
    """A normalised image reference; build one with :func:`parse`."""

    _fields = ("registry", "repository", "tag", "digest")
    registry: str
    repository: str
    tag: str | None
    digest: str | None

    def __init__(self, registry: str, repository: str, tag: str | None, digest: str | None) -> None:
        self._set(registry=registry, repository=repository, tag=tag, digest=digest)

    @property
    def name(self) -> str:
        """Registry and repository, e.g. ``docker.io/library/busybox``."""
        return f"{self.registry}/{self.repository}"

    @property
    def full_name(self) -> str:
        """The fully qualified reference, e.g. ``docker.io/library/busybox:latest``."""
        return self.name + self._suffix()

    @property
    def familiar_name(self) -> str:
        """The repository as ``docker images`` prints it (Docker Hub parts left out)."""
        if self.registry != DEFAULT_REGISTRY:
            return self.name
        short = self.repository.removeprefix(_OFFICIAL_PREFIX)
        # "library/a/b" is not an official image, so it keeps its prefix.
        return self.repository if "/" in short else short

    @property
    def familiar(self) -> str:
        """The short form a user would type, e.g. ``busybox:latest``."""
        return self.familiar_name + self._suffix()

    def with_tag(self, tag: str) -> Reference:
        """Return a copy with ``tag``; the digest is kept, as Docker's ``WithTag`` does."""
        _check_tag(tag, f"{self.name}:{tag}")
        return self.replace(tag=tag)

    def _suffix(self) -> str:
        tag = f":{self.tag}" if self.tag else ""
        digest = f"@{self.digest}" if self.digest else ""
        return tag + digest

    def __str__(self) -> str:
        return self.familiar


def parse(ref: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise ``ref``; add tag ``latest`` when it has neither tag nor digest.

    With ``default_tag=False`` a bare name stays untagged (``tag is None``), which
    is what ``rmi``/``images`` filters need to tell "busybox" from "busybox:latest".
    Raises :class:`InvalidReference` naming ``ref`` and what is wrong with it.
    """
    if not ref:
        raise InvalidReference("invalid reference format: empty image name", hint=_FORM)
    if _IMAGE_ID_RE.fullmatch(ref):
        # A bare 64-hex string is what image ids look like; accepting it as a
        # repository would make "sandbox run <id>" ambiguous.
        raise InvalidReference(
            f"invalid repository name {ref!r}: cannot specify 64-byte hexadecimal strings",
            hint="refer to an image id as it is, not as a name, or choose another name")

    named, at, digest = ref.partition("@")
    if at:
        _check_digest(digest, ref)
    registry, path, tag = _split_name(named, ref)

    if path != path.lower():
        raise InvalidReference(
            f"invalid reference format {ref!r}: repository name must be lowercase",
            hint=f"use {path.lower()!r}")
    if not _PATH_RE.fullmatch(path):
        raise InvalidReference(
            f"invalid reference format {ref!r}: repository {path!r} has invalid characters",
            hint="path components are [a-z0-9] separated by '.', '_', '__' or '-', "
                 "joined by '/', e.g. 'myorg/my-app'")
    if not _REGISTRY_RE.fullmatch(registry):
        raise InvalidReference(
            f"invalid reference format {ref!r}: {registry!r} is not a valid registry host",
            hint="a registry is a host name or [IPv6] address with an optional :port")
    if tag is not None:
        _check_tag(tag, ref)
    if registry == DEFAULT_REGISTRY and "/" not in path:
        path = _OFFICIAL_PREFIX + path
    if len(registry) + 1 + len(path) > _NAME_MAX:
        raise InvalidReference(
            f"invalid reference format {ref!r}: repository name must not be more than "
            f"{_NAME_MAX} characters", hint="use a shorter name")

    if tag is None and not at and default_tag:
        tag = DEFAULT_TAG
    return Reference(registry, path, tag, digest if at else None)


def _split_name(named: str, ref: str) -> tuple[str, str, str | None]:
    """Split ``[registry/]path[:tag]``; the registry is normalised, the path not yet."""
    registry, slash, rest = named.partition("/")
    if not slash or not ("." in registry or ":" in registry or registry == "localhost"):
        registry, rest = DEFAULT_REGISTRY, named
    if registry == _LEGACY_DEFAULT_REGISTRY:
        registry = DEFAULT_REGISTRY

    # A ':' before the last '/' belongs to the registry port, so only look after
    # the registry has been split off.
    path, colon, tag = rest.rpartition(":") if ":" in rest else (rest, "", "")
    if colon and not tag:
        raise InvalidReference(f"invalid reference format {ref!r}: trailing ':' without a tag",
                               hint="remove the ':' or add a tag, e.g. 'busybox:1.36'")
    if not path:
        raise InvalidReference(f"invalid reference format {ref!r}: missing repository name",
                               hint=_FORM)
    return registry, path, tag if colon else None


def _check_tag(tag: str, ref: str) -> None:
    if not _TAG_RE.fullmatch(tag):
        raise InvalidReference(
            f"invalid reference format {ref!r}: tag {tag!r} is not valid",
            hint="a tag is 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-', "
                 "e.g. 'busybox:1.36'")


def _check_digest(digest: str, ref: str) -> None:
    hint = "write it as name@sha256:<64 lowercase hex digits>"
    if not digest:
        raise InvalidReference(f"invalid reference format {ref!r}: trailing '@' without a digest",
                               hint=hint)
    algorithm, colon, hexpart = digest.partition(":")
    if not colon or not _ALGORITHM_RE.fullmatch(algorithm):
        raise InvalidReference(
            f"invalid digest {digest!r} in {ref!r}: expected algorithm:hex", hint=hint)
    length = _DIGEST_HEX_LEN.get(algorithm)
    if length is None:
        raise InvalidReference(
            f"invalid digest {digest!r} in {ref!r}: unsupported algorithm {algorithm!r}",
            hint=hint)
    if len(hexpart) != length or not re.fullmatch(r"[a-f0-9]+", hexpart):
        raise InvalidReference(
            f"invalid digest {digest!r} in {ref!r}: {algorithm} needs {length} "
            f"lowercase hex digits", hint=hint)


def is_image_id_prefix(s: str) -> bool:
    """True if ``s`` has the form of an image id or id prefix: ``[sha256:]`` + 1-64 lowercase hex.

    Callers still try a name first where both readings are possible ("abc" is a
    valid repository name too); this only says the id reading is allowed.
    """
    return bool(_ID_PREFIX_RE.fullmatch(s))
