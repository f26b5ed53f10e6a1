"""The one exception tree of the engine.

Every failure a user can cause or meet is a :class:`SandboxError`.  A message
names the action, the object and the cause, and, where it can, the fix.  The
command line turns any ``SandboxError`` into one line on stderr and exit code
125 (Docker's code for the engine's own errors); the notebook magics turn it
into one short paragraph without a traceback.

::

    SandboxError
    ├── InvalidReference          a name[:tag][@digest] that cannot be parsed
    ├── NotFound
    │   ├── ImageNotFound         no image by that name or id
    │   ├── BlobNotFound          a blob the index or a manifest names is missing
    │   ├── LayerNotFound         no unpacked layer for a chain id
    │   ├── ContainerNotFound     no container by that name or id
    │   ├── VolumeNotFound        no volume by that name
    │   └── NetworkNotFound       no network by that name or id
    ├── Conflict
    │   ├── ImageInUse            rmi of an image something still uses
    │   ├── AmbiguousReference    an id prefix that matches several images
    │   ├── ContainerExists       create with an id or name already taken
    │   ├── InvalidStateTransition  start of a running container, delete without --force, ...
    │   ├── NetworkInUse          network rm of a network containers are still connected to
    │   └── PortInUse             a host port to publish that another process or container holds
    ├── StoreCorrupt
    │   └── BlobCorrupt           a blob whose content does not match its digest
    ├── StoreFull                 no space left for a blob, a layer or metadata
    ├── LayerError
    │   └── UnsafeLayerEntry      a tar entry that would write outside the target
    ├── ArchiveError              save/load/import input that is not what it claims
    ├── BootstrapError            a base image that cannot be made on this host
    ├── RegistryError             a registry refused a request or could not be reached
    │   ├── Unauthorized          the registry wants (other) credentials
    │   ├── RemoteNotFound        no such repository, tag or blob on the registry
    │   └── RegistryUnreachable   no connection, or it kept dropping after retries
    ├── CgroupError               a cgroup file write, mkdir or rmdir failed
    │   ├── CgroupUnavailable     no cgroup file system, or a needed controller is missing
    │   └── InvalidResources      a limit Docker would refuse too (--memory 1m, --cpus 99)
    ├── InvalidSpec               a config.json (OCI bundle) with a missing or wrong field
    ├── ContainerStartError       a step of the container's set-up failed (names the step)
    │   ├── CommandNotFound       the command is not in the image (exit code 127)
    │   └── CommandNotExecutable  the command exists but cannot be executed (exit code 126)
    ├── ContainerError            containers.run(): the command exited non-zero (docker-py's)
    ├── SupervisorError           the store's supervisor cannot be started or reached
    │   └── SupervisorLost        it went away mid-stream (the container may still run)
    ├── NetworkError              an interface, address, route or firewall change failed (keeps errno)
    ├── DockerfileSyntaxError     a Dockerfile that cannot be parsed or makes no sense (file:line)
    ├── BuildError                a build step failed (a RUN exited non-zero, a COPY source is missing)
    ├── PermissionRequired        an operation that needs root or a capability
    ├── UsageError                a wrong flag or argument (CLI and magics)
    └── KernelError               a failed system call (keeps errno, op and path)

Each class documents when it is raised.  ``exit_code`` is what the CLI exits
with; all engine errors use Docker's 125.
"""

from __future__ import annotations

import errno as _errno
import os


class SandboxError(Exception):
    """Base class: any error of the engine that a user can act on."""

    exit_code = 125
    #: One sentence on what to do next, shown after the message when set.
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} ({self.hint})" if self.hint else text


class InvalidReference(SandboxError):
    """Raised when an image reference (``name[:tag][@digest]``) is malformed."""


class NotFound(SandboxError):
    """Base for objects that do not exist."""


class ImageNotFound(NotFound):
    """Raised when no image in the store matches a name, tag, digest or id."""


class BlobNotFound(NotFound):
    """Raised when the index or a manifest points at a blob that is not on disk."""


class LayerNotFound(NotFound):
    """Raised when an unpacked layer directory is asked for and does not exist."""


class Conflict(SandboxError):
    """Base for requests that clash with the store's current state."""


class ContainerNotFound(NotFound):
    """Raised when no container (or runtime state directory) has the given id or name."""


class VolumeNotFound(NotFound):
    """Raised when no volume has the given name."""


class NetworkNotFound(NotFound):
    """Raised when no network has that name, id or id prefix (``network inspect``, ``--network``)."""


class ContainerError(SandboxError):
    """``containers.run`` (docker-py's shape) raises this when the command exits non-zero
    and the caller did not detach.  Carries ``exit_status``, ``command``, ``image``
    and ``stderr`` (bytes), like docker-py's ``ContainerError``.
    """

    def __init__(self, container: str, exit_status: int, command: str, image: str,
                 stderr: bytes) -> None:
        self.container, self.exit_status, self.command = container, exit_status, command
        self.image, self.stderr = image, stderr
        tail = stderr.decode(errors="replace").strip().splitlines()[-1:] if stderr else []
        super().__init__(f"command '{command}' in image '{image}' returned non-zero exit status "
                         f"{exit_status}" + (f": {tail[0]}" if tail else ""))


class SupervisorError(SandboxError):
    """The store's supervisor could not be started or reached, or broke a connection."""


class SupervisorLost(SupervisorError):
    """The supervisor went away in the middle of a stream (killed, or crashed).

    The container it streamed from may well be running still: a client that
    was waiting for it can connect again (starting a new supervisor, which
    adopts it) and wait once more (:mod:`sandbox.containers.resume`).
    """


class DockerfileSyntaxError(SandboxError):
    """Raised for a Dockerfile that cannot be parsed, or whose instructions make no
    sense together (an unknown instruction, malformed JSON, a stage that does not
    exist).  ``filename`` and ``line`` say where; the message starts with them.
    """

    def __init__(self, message: str, *, filename: str = "Dockerfile", line: int | None = None,
                 hint: str | None = None) -> None:
        self.filename, self.line, self.detail = filename, line, message
        where = f"{filename}:{line}" if line else filename
        super().__init__(f"{where}: {message}", hint=hint)


class BuildError(SandboxError):
    """Raised when a build step fails: a RUN command exits non-zero, a COPY source is
    missing, a base image cannot be found.  Carries the ``step`` ("3/7"), the
    Dockerfile ``filename`` and ``line``, the ``instruction`` text, the RUN's
    ``returncode`` (or None) and its last output lines (``output_tail``).
    The command exits 1, as ``docker build`` does.
    """

    exit_code = 1

    def __init__(self, message: str, *, step: str = "", filename: str = "Dockerfile",
                 line: int | None = None, instruction: str = "", exit_code: int | None = None,
                 output_tail: list[str] | None = None, hint: str | None = None) -> None:
        self.step, self.filename, self.line, self.instruction = step, filename, line, instruction
        self.returncode, self.output_tail, self.detail = exit_code, list(output_tail or []), message
        where = f"{filename}:{line}" if line else filename
        prefix = f"step {step} ({where}) `{instruction}`: " if step else f"{where}: "
        super().__init__(prefix + message, hint=hint)


class ContainerExists(Conflict):
    """Raised when a container is created with an id or name that is already taken."""


class InvalidStateTransition(Conflict):
    """Raised for a life-cycle verb the container's state does not allow: start of a
    running container, delete of a running one without force, pause of a stopped one.
    ``state`` is the state the container was found in.
    """

    def __init__(self, message: str, *, state: str | None = None, hint: str | None = None) -> None:
        self.state = state
        super().__init__(message, hint=hint)


class NetworkInUse(Conflict):
    """Raised by ``network rm`` of a network that containers are still connected to (Docker's 409)."""


class PortInUse(Conflict):
    """Raised when a port to publish is held by another process or container; names the port and who holds it.

    Checked before the container starts, so nothing is made for a container
    that could not get its port.
    """


class ImageInUse(Conflict):
    """Raised by ``rmi`` without ``-f`` when several tags or a holder use the image."""


class AmbiguousReference(Conflict):
    """Raised when a short id prefix matches more than one image."""


class StoreCorrupt(SandboxError):
    """Raised when the store's metadata cannot be read (truncated index.json, bad JSON)."""


class BlobCorrupt(StoreCorrupt):
    """Raised when a blob's content does not hash to its digest (read or received)."""

    def __init__(self, digest: str, what: str = "blob", *, actual: str | None = None,
                 hint: str | None = None) -> None:
        self.digest = digest
        self.actual = actual
        detail = f" (content hashes to {actual})" if actual else ""
        super().__init__(
            f"{what} {digest} is corrupt: its content does not match its digest{detail}",
            hint=hint or "remove the image with 'sandbox rmi -f' and pull, load or build it again",
        )


class StoreFull(SandboxError):
    """Raised when the store's file system runs out of space (ENOSPC, EDQUOT).

    The half-written blob, layer or temp file is removed before this is raised.
    """

    def __init__(self, what: str, where: str) -> None:
        self.what, self.where = what, where
        super().__init__(f"no space left on the device holding {where} while writing {what}",
                         hint="free some space (e.g. 'sandbox image prune -a'), or point SANDBOX_ROOT at a bigger disk")


class LayerError(SandboxError):
    """Raised when a layer tar cannot be read or applied (bad tar, unsupported entry)."""


class UnsafeLayerEntry(LayerError):
    """Raised when a tar entry would write outside the target directory.

    Absolute names, ``..`` components, a path through a symlinked directory and a
    hard link whose target lies outside are all refused before anything is written.
    """

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"refusing layer entry {name!r}: {reason}",
                         hint="the archive is unsafe; rebuild it from a trusted source")


class ArchiveError(SandboxError):
    """Raised when ``load``/``import`` input is not a docker-archive, OCI archive or rootfs tar."""


class BootstrapError(SandboxError):
    """Raised when a base image cannot be made from this host (no static busybox, no debootstrap)."""


class RegistryError(SandboxError):
    """Raised when a registry answers a pull, push or login with an error.

    ``code`` keeps the distribution spec's error code (``MANIFEST_BLOB_UNKNOWN``,
    ``DIGEST_INVALID``, ...) when the registry sent one.
    """

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 hint: str | None = None) -> None:
        self.code = code
        self.status = status
        super().__init__(message, hint=hint)


class Unauthorized(RegistryError):
    """Raised when the registry refuses the request for lack of (valid) credentials."""


class RemoteNotFound(RegistryError, NotFound):
    """Raised when the registry has no such repository, tag, manifest or blob."""


class RegistryUnreachable(RegistryError):
    """Raised when the registry cannot be reached, or the connection kept dropping after retries."""


class CgroupError(SandboxError):
    """A cgroup operation failed: a control file write, a mkdir or rmdir, a freeze
    that never settled, or a group that still holds processes when removed.

    ``path`` is the file or directory acted on and ``errno`` the kernel's error
    number (None when the failure is not a system call).
    """

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None,
                 errno: int | None = None, hint: str | None = None) -> None:
        self.path = None if path is None else str(path)
        self.errno = errno
        super().__init__(message, hint=hint)


class CgroupUnavailable(CgroupError):
    """The host cannot give what was asked: no cgroup file system at all, or a
    controller (memory, cpu, pids, ...) that is not mounted (v1) or not enabled
    for this group (v2).  Only raised when the request actually needs it.
    """


class InvalidResources(CgroupError):
    """A resource value that docker would refuse too (``--memory 1m``,
    ``--cpus 99`` on a 2-CPU host, ``--memory-swap`` below ``--memory``, ...).
    Raised before any file is written, so nothing is left half-applied.
    """


class InvalidSpec(SandboxError):
    """Raised when an OCI bundle's ``config.json`` is not valid JSON, misses a
    required field or has one of the wrong type or value.  ``field`` is the
    JSON path of the culprit (``process.capabilities.bounding[3]``).
    """

    def __init__(self, field: str, message: str, *, hint: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message, hint=hint)


class ContainerStartError(SandboxError):
    """A step of the container's set-up failed in the runtime's init (a mount, a
    namespace, pivot_root, capabilities, the exec itself).  ``step`` names the
    step as the runtime's checklist does; ``errno`` is the kernel's error number
    when a system call failed.  Nothing of the container is left behind.
    """

    def __init__(self, step: str, message: str, *, errno: int | None = None,
                 hint: str | None = None) -> None:
        self.step = step
        self.errno = errno
        super().__init__(f"{step}: {message}", hint=hint)


class CommandNotFound(ContainerStartError):
    """The container's command does not exist in its file system, or not in
    ``$PATH``.  Docker's exit code for this case is 127.
    """

    exit_code = 127


class CommandNotExecutable(ContainerStartError):
    """The container's command exists but cannot be run (no execute permission,
    a directory, a bad interpreter).  Docker's exit code is 126.
    """

    exit_code = 126


class NetworkError(SandboxError):
    """A network change the kernel refused: a link, address, route, namespace or firewall rule.

    Keeps the ``errno`` of the failed netlink or nftables request.
    """

    def __init__(self, message: str, *, errno: int = 0, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.errno = errno


class PermissionRequired(SandboxError):
    """Raised when an operation needs root or a capability this process lacks."""


class UsageError(SandboxError):
    """Raised for a wrong flag or argument, by the shared CLI/magic argument parser.

    The parser raises this instead of exiting, so a notebook cell prints one
    paragraph instead of killing or confusing the kernel.
    """


class KernelError(SandboxError):
    """A failed system call.  Keeps ``errno``, the operation and the path it acted on."""

    def __init__(self, op: str, path: str | None, err: int, hint: str | None = None) -> None:
        self.op = op
        self.path = path
        self.errno = err
        where = f" {path}" if path else ""
        super().__init__(f"{op}{where}: {os.strerror(err).lower()}", hint=hint)

    @property
    def errname(self) -> str:
        return _errno.errorcode.get(self.errno, str(self.errno))
