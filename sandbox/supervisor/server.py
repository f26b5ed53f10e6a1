"""The supervisor: one single-threaded process per store that owns the containers.

Why a separate process (DESIGN.md "Key decisions"): a notebook kernel runs
about nine threads, and forking or entering namespaces from a threaded
process is unsafe or refused; a kernel restart kills its process group; and a
container must outlive the client that started it.  So the first client
starts ``python -m sandbox.supervisor`` in a new session; it makes itself the
*child subreaper*, so every container init (forked by the runtime's
short-lived first stage) is re-parented to it and it alone reaps them and
learns their exit codes.

Clients talk to it over ``$SANDBOX_ROOT/supervisor.sock`` (see
:mod:`protocol`).  It writes records, logs and events to disk as things
happen, and a restarted supervisor rebuilds everything from there:
containers whose init is still the same process (pid + start time + boot id)
are adopted, the others are marked exited and their mounts and cgroups
removed.  Read-only requests (``ps``, ``inspect``, ``logs``) are answered by
clients from the files directly.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable

from .. import kernel
from ..containers import setup
from ..containers.records import (NAME_RE, ZERO_TIME, ContainerStore, boot_id, new_id,
                                  random_name, write_json)
from ..containers.volumes import VolumeStore
from ..errors import (Conflict, ContainerExists, ContainerNotFound, ImageNotFound, InvalidStateTransition,
                      SandboxError, UsageError)
from ..runtime.container import Runtime, parse_signal
from . import protocol
from .box import Box, Stream, alive, exit_code_from_pidfd, exit_code_of, now_text
from .loop import Loop

STREAMING = object()
MAX_QUEUED = 16 * 1024 * 1024
EVENTS_MAX = 8 * 1024 * 1024


class Conn:
    """One client connection; ``target`` receives the stdin packets it sends."""

    def __init__(self, sup: "Supervisor", sock: socket.socket) -> None:
        self.sup, self.sock = sup, sock
        sock.setblocking(False)
        self.fd = sock.fileno()
        self.queue: list[bytes] = []
        self.queued = 0
        self.target: Any = None
        self.closed = False
        sup.loop.add_reader(self.fd, self.on_read)

    def on_read(self) -> None:
        try:
            data, fds = protocol.recv(self.sock)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        for fd in fds:  # no request takes descriptors yet
            os.close(fd)
        if not data:
            self.close()
            return
        if data[:1] == b"{":
            self.sup.dispatch(self, json.loads(data))
        elif data[0] == protocol.STDIN and self.target is not None:
            self.target.write_stdin(bytes(data[1:]))
        elif data[:1] == b"R" and self.target is not None:
            size = json.loads(data[1:])
            self.target.resize(int(size["h"]), int(size["w"]))

    def send_packet(self, packet: bytes) -> None:
        if self.closed:
            return
        if not self.queue:
            try:
                self.sock.send(packet)
                return
            except BlockingIOError:
                pass
            except OSError:
                self.close()
                return
        self.queue.append(packet)
        self.queued += len(packet)
        if self.queued > MAX_QUEUED:
            # A client that stopped reading: drop it rather than grow without bound.
            self.close()
            return
        self.sup.loop.add_writer(self.fd, self._flush)

    def _flush(self) -> None:
        while self.queue:
            try:
                self.sock.send(self.queue[0])
            except BlockingIOError:
                return
            except OSError:
                self.close()
                return
            self.queued -= len(self.queue.pop(0))
        self.sup.loop.remove_writer(self.fd)

    def reply(self, result: Any) -> None:
        self.send_packet(protocol.encode({"ok": True, "result": result}))

    def error(self, exc: BaseException) -> None:
        self.send_packet(protocol.encode({"ok": False, "error": protocol.error_payload(exc)}))

    def send_output(self, stream: int, data: bytes) -> None:
        step = protocol.MAX_PACKET
        for i in range(0, len(data), step):
            self.send_packet(bytes([stream]) + data[i:i + step])

    def end_stream(self, obj: dict[str, Any]) -> None:
        self.target = None
        self.send_packet(protocol.encode(obj))

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.sup.loop.forget(self.fd)
        with contextlib.suppress(OSError):
            self.sock.close()
        self.sup.conn_closed(self)


class ExecSession:
    """A process started by ``exec`` (or a health check) in a running container."""

    def __init__(self, sup: "Supervisor", box: Box, sink: Any, done: Callable[[int, bytes], None] | None,
                 conn: Conn | None) -> None:
        self.sup, self.box, self.sink, self.done, self.conn = sup, box, sink, done, conn
        self.out_fds: dict[int, int] = {}
        self.stdin_w: int | None = None
        self.tty_master: int | None = None
        self.pid = 0
        self.timer: Any = None
        self.finished = False

    def _on_output(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.sup.loop.forget(fd)
            self.out_fds.pop(fd, None)
            os.close(fd)
            if fd == self.tty_master:
                self.tty_master = None
            return
        self.sink.send(self.out_fds[fd], data)

    def write_stdin(self, data: bytes) -> None:
        target = self.tty_master if self.tty_master is not None else self.stdin_w
        if target is None:
            return
        if not data:
            if self.tty_master is not None:
                with contextlib.suppress(OSError):
                    os.write(target, b"\x04")
            elif self.stdin_w is not None:
                os.close(self.stdin_w)
                self.stdin_w = None
            return
        with contextlib.suppress(OSError):
            os.set_blocking(target, True)
            os.write(target, data)  # small interactive input; a short block is fine here

    def resize(self, height: int, width: int) -> None:
        if self.tty_master is not None:
            import fcntl
            import struct
            import termios
            fcntl.ioctl(self.tty_master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    def on_exit(self, status: int) -> None:
        if self.timer is not None:
            self.timer.cancel()
        code = exit_code_of(status)
        for fd, stream in list(self.out_fds.items()):
            while True:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    break
                if not data:
                    break
                self.sink.send(stream, data)
            self.sup.loop.forget(fd)
            os.close(fd)
        self.out_fds.clear()
        self.tty_master = None
        if self.stdin_w is not None:
            with contextlib.suppress(OSError):
                os.close(self.stdin_w)
            self.stdin_w = None
        self.finished = True
        self.sup.execs.discard(self)
        if self.done is not None:
            self.done(code, bytes(getattr(self.sink, "data", b"")))
        if self.conn is not None:
            self.conn.end_stream({"exit": code})

    def kill(self) -> None:
        if not self.finished and self.pid:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)


class Supervisor:
    def __init__(self, root: Path) -> None:
        from ..image.store import Store
        self.root = root
        self.store = Store(root)
        self.containers = ContainerStore(root)
        self._images: Any = None
        self.containers.dir.mkdir(exist_ok=True)
        self.volumes = VolumeStore(root)
        self.run_dir = root / "run"
        self.runtime = Runtime(str(self.run_dir / "runtime"))
        from .runc import RuncRuntime
        self.runc = RuncRuntime(str(self.run_dir / "runc"), self.runtime.open_cgroup)
        self.facts = setup.HostFacts()
        self.loop = Loop()
        self.boxes: dict[str, Box] = {}
        self.execs: set[ExecSession] = set()
        self.conns: set[Conn] = set()
        self.sock_path = root / "supervisor.sock"
        self.events_path = root / "events.jsonl"
        self._events_fd = -1

    # ------------------------------------------------------------------ set-up

    def listen(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.sock_path)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)
        try:
            self.server.bind(str(self.sock_path))
        finally:
            os.umask(old)
        self.server.listen(128)
        self.server.setblocking(False)
        self.loop.add_reader(self.server.fileno(), self._accept)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.server.accept()
            except BlockingIOError:
                return
            sock.set_inheritable(False)
            self.conns.add(Conn(self, sock))

    def conn_closed(self, conn: Conn) -> None:
        self.conns.discard(conn)
        for box in self.boxes.values():
            box.streams = [s for s in box.streams if s.conn is not conn]
            box.waiters = [w for w in box.waiters if w[0] is not conn]
        if isinstance(conn.target, Box) and conn.target.rec["Config"].get("StdinOnce"):
            conn.target.write_stdin(b"")  # docker: the container's stdin closes with the client
        for session in list(self.execs):
            if session.conn is conn:
                session.conn = None
                session.write_stdin(b"")

    def recover(self) -> None:
        """Rebuild state from disk after a start (or a restart after kill -9)."""
        boot = boot_id()
        boot_file = self.run_dir / "boot_id"
        with contextlib.suppress(OSError):
            if boot_file.read_text() != boot:
                shutil.rmtree(self.run_dir, ignore_errors=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        boot_file.write_text(boot)
        for entry in os.scandir(self.containers.dir):
            if entry.name.startswith(".removing-"):
                setup.unmount_rootfs(Path(entry.path))
                shutil.rmtree(entry.path, ignore_errors=True)
        for rec in self.containers.all():
            box = Box(self, rec)
            self.boxes[box.id] = box
            if rec["State"].get("Status") == "removing":
                self.remove(box, force=True, volumes=True)
                continue
            try:
                self._recover_one(box, boot)
            except Exception:  # noqa: BLE001 - one broken record must not stop the others
                import traceback
                traceback.print_exc()

    def _recover_one(self, box: Box, boot: str) -> None:
        st, sb = box.state, box.rec["Sandbox"]
        if st.get("Running"):
            pid = int(st.get("Pid") or 0)
            if sb.get("BootId") == boot and alive(pid, int(sb.get("StartTime") or -1)):
                self._adopt(box, pid)
                return
            code = None
            if sb.get("BootId") == boot:
                from .box import zombie_exit_status
                status = zombie_exit_status(pid)
                code = None if status is None else exit_code_of(status)
            with contextlib.suppress(ContainerNotFound):
                box.rc = self.runtime_for(box).get(box.id)
            box.exited(255 if code is None else code,
                       "" if code is not None else
                       "the container stopped while the supervisor was not running; its exit code is unknown")
            return
        with contextlib.suppress(SandboxError, OSError):
            self.unmount_all(box)
        policy = (box.rec["HostConfig"].get("RestartPolicy") or {}).get("Name")
        if st.get("Restarting") or (policy in ("always", "unless-stopped") and sb.get("HasBeenStarted")
                                    and not sb.get("ManualStop")):
            with contextlib.suppress(SandboxError):
                box.start()

    def _adopt(self, box: Box, pid: int) -> None:
        """Take over a container that kept running while no supervisor was there."""
        box.rc = self.runtime_for(box).get(box.id)
        box.log = self.open_log(box)
        box._open_fifo_reader("stdout.fifo", protocol.STDOUT)
        box._open_fifo_reader("stderr.fifo", protocol.STDERR)
        keeper = box.rec["Sandbox"].get("TtyKeeper")
        if box.rec["Config"].get("Tty") and keeper:
            box.adopt_tty(int(keeper[0]), int(keeper[1]))   # its keeper kept the terminal alive
        try:
            pidfd = kernel.pidfd_open(pid)
        except SandboxError:
            box.exited(255, "the container's init vanished during recovery")
            return
        box.pidfd = pidfd

        def on_pidfd() -> None:
            if box.pidfd is None:
                return
            code = exit_code_from_pidfd(pidfd, pid)
            box.exited(255 if code is None else code,
                       "" if code is not None else "exit code unknown: the container was adopted "
                       "by a restarted supervisor and this kernel cannot report it")

        self.loop.add_reader(pidfd, on_pidfd)
        box._schedule_health()

    # ------------------------------------------------------------------ helpers for Box

    def open_log(self, box: Box) -> Any:
        log_config = box.rec["HostConfig"].get("LogConfig") or {}
        if log_config.get("Type") == "none":
            return None
        from ..containers.logs import LogWriter
        from ..containers.options import parse_bytes
        opts = log_config.get("Config") or {}
        max_size = parse_bytes(opts.get("max-size") or "10m", "--log-opt max-size")
        max_files = int(opts.get("max-file") or 2)
        return LogWriter(box.dir / "container.log", max_size=max_size, max_files=max_files)

    def write_bundle(self, cdir: Path, spec: dict[str, Any]) -> None:
        write_json(cdir / "bundle" / "config.json", spec)

    def volume_mounts(self, box: Box) -> list[dict[str, Any]]:
        """OCI mounts for the record's binds, volumes and --mount tmpfs entries."""
        out = []
        rootfs = str(box.dir / "rootfs")
        for m in box.rec.get("Mounts") or []:
            options = ["rbind", "rw" if m.get("RW", True) else "ro"]
            if m.get("Propagation"):
                options.append(m["Propagation"])
            if m["Type"] == "bind":
                out.append({"destination": m["Destination"], "type": "bind", "source": m["Source"],
                            "options": options})
            elif m["Type"] == "volume":
                from ..runtime.paths import secure_join
                self.volumes.copy_up_once(m["Name"], secure_join(rootfs, m["Destination"]))
                out.append({"destination": m["Destination"], "type": "bind",
                            "source": str(self.volumes.mountpoint(m["Name"])), "options": options})
            elif m["Type"] == "tmpfs":
                topts = ["rw" if m.get("RW", True) else "ro", "nosuid", "nodev", "noexec"]
                if m.get("SizeBytes"):
                    topts.append(f"size={m['SizeBytes']}")
                if m.get("ModeOctal"):
                    topts.append(f"mode={m['ModeOctal']}")
                out.append({"destination": m["Destination"], "type": "tmpfs", "source": "tmpfs",
                            "options": topts})
        return out

    def unmount_all(self, box: Box) -> None:
        setup.unmount_rootfs(box.dir)

    def event(self, box: Box, action: str, **attrs: Any) -> None:
        labels = box.rec["Config"].get("Labels") or {}
        t = time.time_ns()
        image = box.rec["Config"].get("Image") or ""
        record = {"status": action, "id": box.id, "from": image, "Type": "container", "Action": action,
                  "Actor": {"ID": box.id, "Attributes": {**labels, "image": image, "name": box.name,
                                                         **{k: str(v) for k, v in attrs.items()}}},
                  "scope": "local", "time": t // 10**9, "timeNano": t}
        self.write_event(record)

    def write_event(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        try:
            if self._events_fd < 0:
                self._events_fd = os.open(self.events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            if os.fstat(self._events_fd).st_size > EVENTS_MAX:
                os.replace(self.events_path, str(self.events_path) + ".1")
                os.close(self._events_fd)
                self._events_fd = os.open(self.events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            os.write(self._events_fd, line)
        except OSError as e:
            print(f"events: {e}", file=sys.stderr)

    def box(self, ref: str) -> Box:
        """The container ``ref`` names (id, name or id prefix), found among the boxes in memory."""
        box = self.boxes.get(ref)
        if box is not None:
            return box
        return self.boxes[self.containers.resolve(ref, [b.rec for b in self.boxes.values()])]

    # ------------------------------------------------------------------ dispatch

    def dispatch(self, conn: Conn, msg: dict[str, Any]) -> None:
        op = msg.get("op", "")
        fn = getattr(self, f"op_{op}", None)
        try:
            if fn is None:
                raise UsageError(f"the supervisor does not know the request {op!r}",
                                 hint="the client and the supervisor are different versions; "
                                      "stop the supervisor (`sandbox system supervisor stop`)")
            result = fn(conn, msg)
        except SandboxError as e:
            conn.error(e)
            return
        except Exception as e:  # noqa: BLE001 - reported to the client, logged here
            import traceback
            traceback.print_exc()
            conn.error(e)
            return
        if result is not STREAMING:
            conn.reply(result)

    # ------------------------------------------------------------------ requests

    def op_ping(self, conn: Conn, msg: dict[str, Any]) -> Any:
        from .. import __version__
        return {"pid": os.getpid(), "version": __version__, "containers": len(self.boxes)}

    def op_shutdown(self, conn: Conn, msg: dict[str, Any]) -> Any:
        """Stop the supervisor; containers keep running and are adopted by the next one."""
        self.loop.running = False
        return {"pid": os.getpid()}

    def runtime_for(self, box: Any) -> Any:
        """The runtime a container was created for: ours, or runc (``--runtime runc``)."""
        rec = box.rec if hasattr(box, "rec") else box
        return self.runc if (rec.get("HostConfig") or {}).get("Runtime") == "runc" else self.runtime

    def op_create(self, conn: Conn, msg: dict[str, Any]) -> Any:
        """``create`` with ``image_id`` and ``layers`` resolved by the caller (the builder)."""
        return self._create(msg)

    def op_create_named(self, conn: Conn, msg: dict[str, Any]) -> Any:
        """``create`` of the image called ``image``.

        The image is resolved here and its config merged under the
        user's, so a client needs no image code.  Resolving and leasing happen
        under the store's transaction lock, so no garbage collection can remove
        the image in between.  Layers not unpacked yet: ``{"NeedUnpack": true}``
        and the client unpacks them (that can take seconds, too long to
        block this single-threaded loop).
        """
        from ..containers.defaults import check_resources, merge_image_config
        check_resources(msg["host_config"])
        ref = msg["image"]
        with self.store.transaction():
            try:
                img = self.images.get(ref)
            except ImageNotFound:
                raise ImageNotFound(f"Unable to find image '{ref}' locally",
                                    hint=f"`sandbox pull {ref}`, or `sandbox bootstrap busybox` "
                                         "for an offline base image") from None
            if not all(self.images.layers.exists(c) for c in img.chain_ids):
                return {"NeedUnpack": True}
            config = merge_image_config(img.config.get("config") or {}, msg["config"],
                                        bool(msg.get("command_given", True)))
            config["Image"] = ref
            return self._create({**msg, "config": config, "image_id": img.id, "layers": img.chain_ids,
                                 "image_ref": ref})

    @property
    def images(self) -> Any:
        """The image store, loaded on the first create by name."""
        if self._images is None:
            from ..image.images import ImageStore
            self._images = ImageStore(self.store)
        return self._images

    def _create(self, msg: dict[str, Any]) -> Any:
        config, host = msg["config"], msg["host_config"]
        if (host.get("Runtime") or "sandbox") == "runc":
            from .runc import runc_binary
            runc_binary()   # a clear error now rather than at start
        name = msg.get("name")
        # Every record is a box here (only the supervisor writes them): no disk reads,
        # so a create costs the same with 100 containers as with none.
        taken = {b.name: b.id for b in self.boxes.values()}
        if name:
            name = name.lstrip("/")
            if not NAME_RE.match(name):
                raise UsageError(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
                                 hint="pick a name of letters, digits, _ . and -")
            if name in taken:
                raise ContainerExists(
                    f'Conflict. The container name "/{name}" is already in use by container '
                    f'"{taken[name]}". You have to remove (or rename) that container to be able '
                    "to reuse that name.", hint=f"`sandbox rm {name}` or pick another --name")
        else:
            name = random_name(set(taken))
        cid = new_id()
        cdir = self.containers.path(cid)
        made_volumes: list[str] = []
        holder = f"container-{cid}"
        try:
            mounts = self._mounts_for(cid, config, host, made_volumes)
            cdir.mkdir(parents=True)
            self.store.lease(holder, images=[msg["image_id"]], layers=list(msg["layers"]))
            setup.make_dirs(cdir, [m["Destination"] for m in mounts],
                            [m["Destination"] for m in mounts
                             if m.get("Type") == "bind" and os.path.isfile(m.get("Source") or "")])
            config.setdefault("Hostname", cid[:12])
            if not config.get("Hostname"):
                config["Hostname"] = cid[:12]
            setup.write_etc_files(cdir, config["Hostname"], config.get("Domainname") or "",
                                  host.get("NetworkMode") or "none", host.get("ExtraHosts") or [],
                                  host.get("Dns") or [], host.get("DnsSearch") or [])
            args = setup.process_args(config)
            network = host.get("NetworkMode") or "default"
            if network == "default":
                host["NetworkMode"] = network = "none"
            record = {
                "Id": cid, "Created": now_text(), "Path": args[0] if args else "",
                "Args": args[1:], "Name": "/" + name, "RestartCount": 0,
                "State": {"Status": "created", "Running": False, "Paused": False, "Restarting": False,
                          "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
                          "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME},
                "Image": msg["image_id"], "ResolvConfPath": str(cdir / "resolv.conf"),
                "HostnamePath": str(cdir / "hostname"), "HostsPath": str(cdir / "hosts"),
                "LogPath": str(cdir / "container.log"), "Driver": "overlay",
                "Platform": "linux", "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "",
                "ExecIDs": None, "HostConfig": host,
                "GraphDriver": {"Name": "overlay", "Data": {
                    "LowerDir": ":".join(setup.lower_dirs(self.store, cdir, list(msg["layers"]))),
                    "UpperDir": str(cdir / "upper"), "WorkDir": str(cdir / "work"),
                    "MergedDir": str(cdir / "rootfs")}},
                "Mounts": mounts, "Config": config,
                "NetworkSettings": {"Networks": {network: {}} if network != "none" else {"none": {}}},
                "Sandbox": {"Layers": list(msg["layers"]), "ImageRef": msg.get("image_ref") or "",
                            "BootId": "", "StartTime": 0, "HasBeenStarted": False,
                            "ManualStop": False},
            }
            if (config.get("Healthcheck") or {}).get("Test", ["NONE"])[0] != "NONE":
                record["State"]["Health"] = {"Status": "starting", "FailingStreak": 0, "Log": []}
            self.containers.save(record, durable=True)
        except BaseException:
            shutil.rmtree(cdir, ignore_errors=True)
            with contextlib.suppress(OSError, SandboxError):
                self.store.release(holder)
            for v in made_volumes:
                with contextlib.suppress(SandboxError, OSError):
                    self.volumes.remove(v)
            raise
        box = self.boxes[cid] = Box(self, record)
        box.event("create")
        return {"Id": cid, "Warnings": []}

    def _mounts_for(self, cid: str, config: dict[str, Any], host: dict[str, Any],
                    made: list[str]) -> list[dict[str, Any]]:
        """docker inspect's "Mounts" from -v, --mount and the image's VOLUMEs; volumes made now."""
        mounts: list[dict[str, Any]] = []
        seen: set[str] = set()

        def add(m: dict[str, Any]) -> None:
            dest = os.path.normpath(m["Destination"])
            if not dest.startswith("/"):
                raise UsageError(f"invalid mount config: mount path must be absolute: {dest}")
            if dest in seen:
                raise UsageError(f"Duplicate mount point: {dest}",
                                 hint="each container path can only be mounted once")
            seen.add(dest)
            m["Destination"] = dest
            mounts.append(m)

        def volume(name: str | None, dest: str, rw: bool) -> None:
            if name and (self.volumes.path(name) / "volume.json").exists():
                meta = self.volumes.get(name)
            else:
                meta = self.volumes.create(name, anonymous=not name)
                made.append(meta["Name"])
            add({"Type": "volume", "Name": meta["Name"], "Source": meta["Mountpoint"],
                 "Destination": dest, "Driver": "local", "Mode": "z" if rw else "ro", "RW": rw,
                 "Propagation": ""})

        for bind in host.get("Binds") or []:
            parts = bind.split(":")
            src, dest = parts[0], parts[1]
            opts = parts[2].split(",") if len(parts) > 2 else []
            rw = "ro" not in opts
            if src.startswith("/"):
                if not os.path.exists(src):
                    raise UsageError(f'invalid mount config for type "bind": bind source path does not exist: {src}',
                                     hint="create the host directory first, or check the spelling")
                prop = next((o for o in opts if o in ("private", "rprivate", "shared", "rshared",
                                                      "slave", "rslave")), "rprivate")
                add({"Type": "bind", "Source": src, "Destination": dest, "Mode": ",".join(opts),
                     "RW": rw, "Propagation": prop})
            else:
                volume(src, dest, rw)
        for m in host.get("Mounts") or []:
            kind = m.get("Type", "volume")
            rw = not m.get("ReadOnly")
            if kind == "bind":
                src = m.get("Source") or ""
                if not os.path.exists(src):
                    raise UsageError(f'invalid mount config for type "bind": bind source path does not exist: {src}',
                                     hint="create the host directory first, or check the spelling")
                add({"Type": "bind", "Source": src, "Destination": m["Target"], "Mode": "", "RW": rw,
                     "Propagation": (m.get("BindOptions") or {}).get("Propagation") or "rprivate"})
            elif kind == "volume":
                volume(m.get("Source") or None, m["Target"], rw)
            elif kind == "tmpfs":
                topts = m.get("TmpfsOptions") or {}
                mode = topts.get("Mode")
                add({"Type": "tmpfs", "Source": "", "Destination": m["Target"], "Mode": "", "RW": rw,
                     "Propagation": "", "SizeBytes": topts.get("SizeBytes"),
                     "ModeOctal": format(mode, "o") if isinstance(mode, int) else mode})
            else:
                raise UsageError(f"mount type {kind!r} is not supported", hint="use bind, volume or tmpfs")
        for dest in (config.get("Volumes") or {}):
            if os.path.normpath(dest) not in seen and os.path.normpath(dest) not in (host.get("Tmpfs") or {}):
                volume(None, dest, True)
        return mounts

    def op_start(self, conn: Conn, msg: dict[str, Any]) -> Any:
        box = self.box(msg["id"])
        stream = None
        if msg.get("attach"):
            stream = Stream(conn, msg.get("stdout", True), msg.get("stderr", True))
            box.streams.append(stream)
            if msg.get("stdin_attach"):
                conn.target = box
        try:
            box.start()
        except SandboxError:
            if stream is not None:
                box.streams.remove(stream)
                conn.target = None
            if box.rec["HostConfig"].get("AutoRemove"):
                self.remove(box, force=True, volumes=True)
            raise
        result = {"Id": box.id, "Warnings": box.rec["Sandbox"].get("Warnings") or [],
                  "Tty": bool(box.rec["Config"].get("Tty"))}
        if stream is None:
            return result
        conn.reply(result)
        return STREAMING

    def op_attach(self, conn: Conn, msg: dict[str, Any]) -> Any:
        box = self.box(msg["id"])
        if not box.running and not msg.get("wait_start"):
            raise InvalidStateTransition(f"You cannot attach to a stopped container, start it first",
                                         state=box.state["Status"], hint=f"`sandbox start -a {box.name}`")
        box.streams.append(Stream(conn, msg.get("stdout", True), msg.get("stderr", True)))
        if msg.get("stdin_attach"):
            conn.target = box
        conn.reply({"Id": box.id, "Tty": bool(box.rec["Config"].get("Tty"))})
        return STREAMING

    def op_wait(self, conn: Conn, msg: dict[str, Any]) -> Any:
        box = self.box(msg["id"])
        condition = msg.get("condition") or "not-running"
        if condition == "not-running" and not box.running and not box.state.get("Restarting") \
                and box.restart_timer is None:
            code = int(box.state.get("ExitCode") or 0)
            err = box.state.get("Error") or None
            conn.reply({"waiting": False})
            conn.end_stream({"exit": code, "result": {"StatusCode": code,
                                                      "Error": {"Message": err} if err else None}})
            return STREAMING
        box.waiters.append((conn, condition))
        conn.reply({"waiting": True})
        return STREAMING

    def op_stop(self, conn: Conn, msg: dict[str, Any]) -> Any:
        box = self.box(msg["id"])
        if box.restart_timer is not None:
            box.restart_timer.cancel()
            box.restart_timer = None
            box.rec["Sandbox"]["ManualStop"] = True
            box.state.update(Restarting=False, Status="exited")
            box.save()
        if not box.running:
            # Still a stream (clients follow it to its end), one that ends at once.
            conn.reply({"Id": box.id, "WasRunning": False})
            conn.end_stream({"exit": int(box.state.get("ExitCode") or 0)})
            return STREAMING
        box.stop(msg.get("timeout"), msg.get("signal"))
        box.waiters.append((conn, "not-running"))
        conn.reply({"Id": box.id, "WasRunning": True})
        return STREAMING

    def op_kill(self, conn: Conn, msg: dict[str, Any]) -> Any:
        box = self.box(msg["id"])
        signum = parse_signal(msg.get("signal") or "KILL")
        if signum == signal.SIGKILL:
            box.rec["Sandbox"]["ManualStop"] = bool(msg.get("manual", False))
        box.kill(signum)
        return {"Id": box.id}

    def op_pause(self, conn: Conn, msg: dict[str, Any]) -> Any:
        box = self.box(msg["id"])
        box.pause()
        return {"Id": box.id}

    def op_unpause(self, conn: Conn, msg: dict[str, Any]) -> Any:
        box = self.box(msg["id"])
        box.unpause()
        return {"Id": box.id}

    def op_restart(self, conn: Conn, msg: dict[str, Any]) -> Any:
        box = self.box(msg["id"])
        if not box.running:
            box.start()
            box.event("restart")
            return {"Id": box.id}
        box.stop(msg.get("timeout"))
        box.waiters.append((_Restarter(self, box, conn), "not-running"))
        conn.reply({"Id": box.id})
        return STREAMING

    def op_remove(self, conn: Conn, msg: dict[str, Any]) -> Any:
        box = self.box(msg["id"])
        self.remove(box, force=bool(msg.get("force")), volumes=bool(msg.get("volumes")))
        return {"Id": box.id}

    def remove(self, box: Box, *, force: bool, volumes: bool) -> None:
        if box.running:
            if not force:
                status = "paused" if box.state.get("Paused") else "running"
                raise Conflict(f"You cannot remove a {status} container {box.id}. Stop the container "
                               "before attempting removal or force remove",
                               hint=f"`sandbox stop {box.name}` first, or `sandbox rm -f {box.name}`")
            box.removing = True
            self._kill_now(box)
        box.removing = True
        if box.restart_timer is not None:
            box.restart_timer.cancel()
        box.state["Status"] = "removing"
        with contextlib.suppress(OSError):
            box.save()
        with contextlib.suppress(SandboxError, OSError):
            if box.rc is None:
                box.rc = self.runtime_for(box).get(box.id)
            box.rc.delete(force=True)
        box.rc = None
        box._close_io()
        if box.log is not None:
            box.log.close()
            box.log = None
        self.unmount_all(box)
        with contextlib.suppress(OSError, SandboxError):
            self.store.release(f"container-{box.id}")
        doomed = box.dir.with_name(f".removing-{box.id}")
        with contextlib.suppress(FileNotFoundError):
            os.rename(box.dir, doomed)  # the record is gone in one step
        self.boxes.pop(box.id, None)
        if volumes:
            for m in box.rec.get("Mounts") or []:
                if m.get("Type") == "volume" and self.volumes.is_anonymous(m["Name"]):
                    with contextlib.suppress(SandboxError, OSError):
                        self.volumes.remove(m["Name"])
        box.event("destroy")
        box.removed()  # answer `run --rm` and `wait` now; the files go when no client waits
        self.loop.when_idle(lambda: shutil.rmtree(doomed, ignore_errors=True))

    def _kill_now(self, box: Box) -> None:
        """SIGKILL everything in the container and handle its exit before returning."""
        rc = box.rc
        assert rc is not None
        pid = rc.pid
        callback = self.loop.children.pop(pid, None)
        with contextlib.suppress(SandboxError, OSError):
            cg = rc.cgroup
            if cg is not None and cg.exists():
                cg.kill()
            else:
                rc.kill(signal.SIGKILL)
        status = None
        if callback is not None:
            with contextlib.suppress(ChildProcessError):
                _, status = os.waitpid(pid, 0)
        code = exit_code_of(status) if status is not None else 137
        box.exited(code)

    def op_exec(self, conn: Conn, msg: dict[str, Any]) -> Any:
        box = self.box(msg["id"])
        detach = bool(msg.get("detach"))
        session = self.start_exec(box, msg, Stream(conn) if not detach else _Null(), conn=None if detach else conn,
                                  stdin=bool(msg.get("stdin_attach")) and not detach)
        box.event("exec_start: " + " ".join(msg.get("Cmd") or []))
        if detach:
            return {"Pid": session.pid}
        conn.target = session
        conn.reply({"Pid": session.pid})
        return STREAMING

    def start_exec(self, box: Box, cfg: dict[str, Any], sink: Any, *,
                   done: Callable[[int, bytes], None] | None = None, conn: Conn | None = None,
                   stdin: bool = False, timeout: float | None = None) -> ExecSession:
        if not box.running or box.rc is None:
            raise InvalidStateTransition(f"container {box.id} is not running", state=box.state["Status"],
                                         hint=f"start it first: `sandbox start {box.name}`")
        if box.state.get("Paused"):
            raise InvalidStateTransition(f"container {box.id} is paused, unpause the container before exec",
                                         state="paused", hint=f"`sandbox unpause {box.name}`")
        cmd = list(cfg.get("Cmd") or [])
        if not cmd:
            raise UsageError("exec needs a command", hint="for example: sandbox exec NAME ls /")
        spec_proc = box.rc.spec["process"]
        if cfg.get("User"):
            uid, gid, extra = setup.resolve_user(box.dir / "rootfs", cfg["User"])
            user: dict[str, Any] = {"uid": uid, "gid": gid}
            if extra:
                user["additionalGids"] = extra
        else:
            user = dict(spec_proc["user"])
        caps = dict(spec_proc["capabilities"])
        if cfg.get("Privileged"):
            full = sorted(self.facts.bounding_set)
            caps = {"bounding": full, "effective": full, "permitted": full, "inheritable": [], "ambient": []}
        elif user["uid"] != 0:
            caps = dict(caps, effective=[], permitted=[])
        elif not caps.get("effective"):
            caps = dict(caps, effective=list(caps["bounding"]), permitted=list(caps["bounding"]))
        env = list(spec_proc.get("env") or [])
        names = {e.partition("=")[0]: i for i, e in enumerate(env)}
        for e in cfg.get("Env") or []:
            k = e.partition("=")[0]
            if k in names:
                env[names[k]] = e
            else:
                env.append(e)
        tty = bool(cfg.get("Tty"))
        if tty and not any(e.startswith("TERM=") for e in env):
            env.append("TERM=xterm")
        process = {"terminal": tty, "user": user, "args": cmd, "env": env,
                   "cwd": cfg.get("WorkingDir") or spec_proc.get("cwd") or "/",
                   "capabilities": caps, "noNewPrivileges": bool(spec_proc.get("noNewPrivileges"))}
        if spec_proc.get("rlimits"):
            process["rlimits"] = spec_proc["rlimits"]
        session = ExecSession(self, box, sink, done, conn)
        to_close: list[int] = []
        pair = None
        try:
            if tty:
                pair = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
                stdio = None
            else:
                out_r, out_w = os.pipe2(os.O_CLOEXEC)
                err_r, err_w = os.pipe2(os.O_CLOEXEC)
                to_close += [out_w, err_w]
                for fd, stream in ((out_r, protocol.STDOUT), (err_r, protocol.STDERR)):
                    os.set_blocking(fd, False)
                    session.out_fds[fd] = stream
                if stdin:
                    in_r, in_w = os.pipe2(os.O_CLOEXEC)
                    session.stdin_w = in_w
                else:
                    in_r = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
                to_close.append(in_r)
                stdio = (in_r, out_w, err_w)
            session.pid = box.rc.exec(process, stdio=stdio, console_socket=pair[1] if pair else None)
            if pair is not None:
                _, fds, _, _ = socket.recv_fds(pair[0], 1024, 1)
                session.tty_master = fds[0]
                os.set_blocking(fds[0], False)
                session.out_fds[fds[0]] = protocol.STDOUT
        except BaseException:
            for fd in list(session.out_fds) + ([session.stdin_w] if session.stdin_w is not None else []):
                with contextlib.suppress(OSError):
                    os.close(fd)
            raise
        finally:
            for fd in to_close:
                os.close(fd)
            if pair is not None:
                for s in pair:
                    s.close()
        for fd in session.out_fds:
            self.loop.add_reader(fd, (lambda f: lambda: session._on_output(f))(fd))
        self.loop.children[session.pid] = session.on_exit
        self.execs.add(session)
        if timeout:
            session.timer = self.loop.call_later(timeout, session.kill)
        return session

    def op_resize(self, conn: Conn, msg: dict[str, Any]) -> Any:
        box = self.box(msg["id"])
        box.resize(int(msg["h"]), int(msg["w"]))
        return None

    def op_rename(self, conn: Conn, msg: dict[str, Any]) -> Any:
        box = self.box(msg["id"])
        new = str(msg["name"]).lstrip("/")
        if not NAME_RE.match(new):
            raise UsageError(f"Invalid container name ({new}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        other = next((b.id for b in self.boxes.values() if b.name == new), None)
        if other and other != box.id:
            raise ContainerExists(f'Conflict. The container name "/{new}" is already in use by container '
                                  f'"{other}". You have to remove (or rename) that container to be able '
                                  "to reuse that name.")
        old = box.name
        box.rec["Name"] = "/" + new
        box.save(durable=True)
        box.event("rename", oldName="/" + old)
        return {"Id": box.id}

    def op_update(self, conn: Conn, msg: dict[str, Any]) -> Any:
        """docker update: new limits in the record, and on the live cgroup when running."""
        from ..cgroups import Resources
        box = self.box(msg["id"])
        changes = dict(msg["resources"])
        host = box.rec["HostConfig"]
        res = Resources(memory=changes.get("Memory"), memory_swap=changes.get("MemorySwap"),
                        memory_reservation=changes.get("MemoryReservation"),
                        cpu_shares=changes.get("CpuShares"), cpu_quota=changes.get("CpuQuota"),
                        cpu_period=changes.get("CpuPeriod"),
                        cpus=(changes["NanoCpus"] / 1e9) if changes.get("NanoCpus") else None,
                        cpuset_cpus=changes.get("CpusetCpus"), pids_limit=changes.get("PidsLimit"))
        warnings: list[str] = []
        if box.running and box.rc is not None and box.rc.cgroup is not None:
            warnings = box.rc.cgroup.apply(res)
        for key in ("Memory", "MemorySwap", "MemoryReservation", "CpuShares", "CpuQuota", "CpuPeriod",
                    "NanoCpus", "CpusetCpus", "PidsLimit"):
            if changes.get(key) is not None:
                host[key] = changes[key]
        if changes.get("RestartPolicy"):
            host["RestartPolicy"] = changes["RestartPolicy"]
        box.save(durable=True)
        box.event("update")
        return {"Warnings": warnings}

    def op_prune(self, conn: Conn, msg: dict[str, Any]) -> Any:
        removed = []
        for box in list(self.boxes.values()):
            if not box.running and box.restart_timer is None and _matches_labels(box, msg.get("labels") or []):
                self.remove(box, force=False, volumes=False)
                removed.append(box.id)
        return {"ContainersDeleted": removed, "SpaceReclaimed": 0}

    def op_commit_pause(self, conn: Conn, msg: dict[str, Any]) -> Any:
        """Freeze (or thaw) a running container around a commit, as docker commit --pause does."""
        box = self.box(msg["id"])
        if box.running and box.rc is not None and box.rc.cgroup is not None and not box.state.get("Paused"):
            if msg.get("freeze"):
                box.rc.cgroup.freeze()
            else:
                box.rc.cgroup.thaw()
        return None


class _Restarter:
    """A waiter that starts the container again once it stopped (``docker restart``)."""

    def __init__(self, sup: Supervisor, box: Box, conn: Conn) -> None:
        self.sup, self.box, self.conn = sup, box, conn

    def end_stream(self, obj: dict[str, Any]) -> None:
        try:
            self.box.start()
            self.box.event("restart")
            self.conn.end_stream({"exit": 0})
        except SandboxError as e:
            self.conn.end_stream({"exit": 1, "error": protocol.error_payload(e)})


class _Null:
    def send(self, stream: int, data: bytes) -> None:
        pass


def _matches_labels(box: Box, labels: list[str]) -> bool:
    mine = box.rec["Config"].get("Labels") or {}
    for item in labels:
        k, _, v = item.partition("=")
        if k not in mine or (v and mine[k] != v):
            return False
    return True


def serve(root: Path, ready_fd: int | None = None) -> int:
    """Run the supervisor for ``root`` until asked to stop (or SIGTERM)."""
    import fcntl
    root.mkdir(parents=True, exist_ok=True)
    (root / "locks").mkdir(exist_ok=True)
    lock_fd = os.open(root / "locks" / "supervisor.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        # Another supervisor owns this store: nothing to do (the client will connect to it).
        if ready_fd is not None:
            os.write(ready_fd, b"other\n")
        return 0
    os.ftruncate(lock_fd, 0)
    os.write(lock_fd, f"{os.getpid()}\n".encode())
    kernel.set_child_subreaper(True)
    with contextlib.suppress(SandboxError, OSError):
        kernel.set_name("sandbox-sup")
    sup = Supervisor(root)
    signal.signal(signal.SIGTERM, lambda *_: setattr(sup.loop, "running", False))
    signal.signal(signal.SIGINT, lambda *_: setattr(sup.loop, "running", False))
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    sup.recover()
    sup.listen()
    if ready_fd is not None:
        os.write(ready_fd, b"ready\n")
        os.close(ready_fd)
    print(f"{now_text()} supervisor {os.getpid()} serving {root} ({len(sup.boxes)} containers)",
          file=sys.stderr, flush=True)
    sup.loop.run()
    with contextlib.suppress(OSError):
        os.unlink(sup.sock_path)
    print(f"{now_text()} supervisor {os.getpid()} stopped; running containers keep running",
          file=sys.stderr, flush=True)
    return 0


_ = errno
