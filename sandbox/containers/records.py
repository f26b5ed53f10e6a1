"""Container records on disk: ``$SANDBOX_ROOT/containers/<id>/``.

Everything about a container that must outlive the processes that made it
lives in its directory, so the supervisor can be killed and restarted, and
clients can read (``ps``, ``inspect``, ``logs``, ``diff``) without asking it:

    container.json    docker's inspect document (Config, HostConfig, State, ...)
                      plus a private "Sandbox" section (layers, pid start time, boot id)
    init/             the init layer: empty mount points for /etc/hosts, /proc, ...
    upper/ work/      overlayfs's writable layer and work directory
    rootfs/           where the overlay is mounted while the container runs; with the
                      vfs driver, the container's own copy of its image (no upper/ work/)
    vfs-dirs.json     vfs: the identity of each directory the copy started with
    hostname hosts resolv.conf   bind-mounted over the init layer's files
    bundle/config.json           the OCI spec the runtime was given last
    stdout.fifo stderr.fifo      the container's output, kept open across supervisor restarts
    container.log                json-file logs

Only the supervisor writes a record (it is single-threaded, so writes never
race); each write is temp file + rename, so a reader sees a whole document.
The record is written without fsync on the hot path (start and exit happen
fifty times a second in a benchmark): after a power cut the state is rebuilt
from the kernel anyway (pid + start time + boot id).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Any
from collections.abc import Iterable, Iterator

from ..errors import AmbiguousReference, ContainerNotFound

NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
ZERO_TIME = "0001-01-01T00:00:00Z"


def _random_hex(nbytes: int) -> str:
    return os.urandom(nbytes).hex()


def new_id() -> str:
    while True:
        cid = _random_hex(32)
        if not cid[:12].isdigit():  # docker avoids all-digit short ids (they read as numbers)
            return cid


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def stale_running(rec: dict[str, Any]) -> bool:
    """Whether the record says "running" of an init that is gone (or of another boot).

    Only the supervisor writes records; if it died, a record can claim a
    container runs whose init has exited.  A reader that sees this asks for a
    supervisor, whose recovery writes the truth (from the exit keeper).
    """
    state, sandbox = rec.get("State") or {}, rec.get("Sandbox") or {}
    if not state.get("Running") or state.get("Paused"):
        return False
    pid, start = int(state.get("Pid") or 0), sandbox.get("StartTime")
    if pid <= 0 or start is None:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return True
    fields = data[data.rindex(b")") + 2:].split()
    return fields[0] in (b"Z", b"X") or int(fields[19]) != int(start)


def write_json(path: Path | str, data: Any, *, durable: bool = False) -> None:
    """Temp + rename in the same directory; fsync only when ``durable``."""
    path = str(path)
    tmp = f"{path}.tmp-{_random_hex(3)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        data_bytes = json.dumps(data, indent=None, separators=(",", ":")).encode()
        view = memoryview(data_bytes)
        while view:
            view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    os.close(fd)
    os.rename(tmp, path)


class ContainerStore:
    """The ``containers/`` directory of one store."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.dir = self.root / "containers"

    def path(self, cid: str) -> Path:
        return self.dir / cid

    def record_path(self, cid: str) -> Path:
        return self.dir / cid / "container.json"

    def load(self, cid: str) -> dict[str, Any]:
        try:
            with open(self.record_path(cid), "rb") as f:
                data: dict[str, Any] = json.loads(f.read())
                return data
        except FileNotFoundError:
            raise ContainerNotFound(f"No such container: {cid}") from None

    def save(self, record: dict[str, Any], *, durable: bool = False) -> None:
        write_json(self.record_path(record["Id"]), record, durable=durable)

    def ids(self) -> list[str]:
        try:
            return [e.name for e in os.scandir(self.dir)
                    if len(e.name) == 64 and os.path.exists(os.path.join(e.path, "container.json"))]
        except FileNotFoundError:
            return []

    def all(self) -> Iterator[dict[str, Any]]:
        for cid in self.ids():
            with contextlib.suppress(ContainerNotFound, ValueError):
                yield self.load(cid)

    def resolve(self, ref: str, records: Iterable[dict[str, Any]] | None = None) -> str:
        """A full id from a full id, a name (with or without "/"), or a unique id prefix.

        ``records``: the records to look in (the supervisor's, in memory) instead of the disk.
        """
        if not ref:
            raise ContainerNotFound("No such container: ''", hint="give a container name or id")
        if records is None:
            if len(ref) == 64 and self.record_path(ref).exists():
                return ref
            records = self.all()
        records = list(records)
        if len(ref) == 64 and any(r["Id"] == ref for r in records):
            return ref
        name = ref.lstrip("/")
        for r in records:
            if r.get("Name", "").lstrip("/") == name:
                return str(r["Id"])
        matches = [r["Id"] for r in records if r["Id"].startswith(ref)] if re.fullmatch(r"[0-9a-f]+", ref) else []
        if len(matches) == 1:
            return str(matches[0])
        if len(matches) > 1:
            raise AmbiguousReference(f"multiple containers match the id prefix {ref}: "
                                     + ", ".join(m[:12] for m in matches),
                                     hint="give more characters of the id, or the name")
        raise ContainerNotFound(f"No such container: {ref}",
                                hint="`sandbox ps -a` lists the containers")


_ADJECTIVES = ("brave calm clever eager fancy gentle happy jolly keen lucid merry nifty "
               "proud quiet rapid serene sharp tender upbeat vivid witty zealous bold cosmic "
               "dreamy elated festive gallant hopeful inspiring").split()
_NAMES = ("babbage bell bohr curie darwin dijkstra einstein euler faraday fermi franklin gauss "
          "hopper hypatia kepler knuth lamarr lovelace meitner newton noether pascal ritchie "
          "shannon thompson torvalds turing volta wozniak yalow").split()


def random_name(taken: set[str]) -> str:
    """docker's adjective_scientist names, with a digit added on a clash."""
    import secrets   # here, not at the top: a cold client never names a container
    for attempt in range(100):
        name = f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_NAMES)}"
        if attempt > 10:
            name += str(secrets.randbelow(10))
        if name not in taken:
            return name
    return "c_" + _random_hex(6)
