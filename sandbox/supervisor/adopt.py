"""Recovery: a starting supervisor rebuilds its state from the records on disk.

A running container whose init is still the same process (pid + start time +
boot id) is adopted: its fifos are opened again, its terminal taken back from
its keeper, and a pidfd tells when it exits.  The others are marked exited
(with the exit code a zombie still holds, else 255 and a note), their mounts
and cgroups removed; ``always``/``unless-stopped`` containers start again;
half-removed ones are removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import traceback
from pathlib import Path

from .. import kernel
from ..containers import setup
from ..containers.records import boot_id
from ..errors import ContainerNotFound, SandboxError
from . import protocol
from .box import Box, remove_anonymous_volumes
from .core import Core
from .reaping import (alive, exit_code_from_pidfd, exit_code_of, forget_kept_exits, kept_exit_status,
                      zombie_exit_status)

#: How long to wait for an exit keeper to write a status it is reaping (seconds).
KEEPER_WAIT = 0.5


def recover(core: Core) -> None:
    """Rebuild state from disk after a start (or a restart after kill -9)."""
    boot = boot_id()
    boot_file = core.run_dir / "boot_id"
    with contextlib.suppress(OSError):
        if boot_file.read_text() != boot:
            shutil.rmtree(core.run_dir, ignore_errors=True)
    core.run_dir.mkdir(parents=True, exist_ok=True)
    boot_file.write_text(boot)
    for entry in os.scandir(core.containers.dir):
        if entry.name.startswith(".removing-"):
            _finish_removal(core, Path(entry.path))
        elif len(entry.name) == 64 and not os.path.exists(os.path.join(entry.path, "container.json")):
            remove_unfinished_create(core, entry.name)
    for entry in os.scandir(core.root):
        if entry.name.startswith(f".{setup.SHARED_INIT}-"):
            shutil.rmtree(entry.path, ignore_errors=True)   # a shared init layer half-made when killed
    core.volumes.remove_leftovers()
    for rec in core.containers.all():
        box = Box(core, rec)
        core.boxes[box.id] = box
        if rec["State"].get("Status") == "removing":
            box.remove(force=True, volumes=bool(rec["Sandbox"].get("RemoveVolumes", True)))
            continue
        try:
            _recover_one(core, box, boot)
        except Exception:  # noqa: BLE001 - one broken record must not stop the others
            traceback.print_exc()
    forget_kept_exits(core.exits_dir, {f"{b.state.get('Pid')}-{b.rec['Sandbox'].get('StartTime')}"
                                       for b in core.boxes.values() if b.pidfd is not None})
    _recover_network(core)


def _finish_removal(core: Core, doomed: Path) -> None:
    """A record renamed away (``rm``) whose files the killed supervisor had not deleted yet.

    Its ``rm -v`` may not have reached the anonymous volumes either: the
    record, still inside, says which they are and whether they go.
    """
    try:
        rec = json.loads((doomed / "container.json").read_bytes())
    except (OSError, ValueError):
        rec = None
    if rec is not None and rec.get("Sandbox", {}).get("RemoveVolumes", True):
        remove_anonymous_volumes(core.volumes, rec)
    setup.unmount_rootfs(doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def remove_unfinished_create(core: Core, cid: str) -> None:
    """Undo a create its supervisor was killed in: a container directory without a record.

    Nobody was told of the container (the record is the last thing create
    writes), so it goes whole, as a failed create does: its directory, the
    lease that keeps its image, and the anonymous volumes made for it.
    """
    with contextlib.suppress(OSError, SandboxError):
        core.store.release(f"container-{cid}")
    for name in core.volumes.made_for(cid):
        with contextlib.suppress(OSError, SandboxError):
            core.volumes.remove(name)
    with contextlib.suppress(OSError, SandboxError):
        setup.unmount_rootfs(core.containers.path(cid))
    shutil.rmtree(core.containers.path(cid), ignore_errors=True)


def _recover_network(core: Core) -> None:
    """Rebuild the networks of the adopted containers; remove what a dead supervisor left behind."""
    from ..network.manager import ALIAS_PREFIX
    from ..network.rtnl import aliased
    if not core.network_loaded and not aliased(ALIAS_PREFIX + str(core.root)):
        return
    try:
        core.network.recovered()
    except Exception:  # noqa: BLE001 - the containers are adopted; say what failed and go on
        traceback.print_exc()


def _recover_one(core: Core, box: Box, boot: str) -> None:
    st, sb = box.state, box.rec["Sandbox"]
    if st.get("Running"):
        pid = int(st.get("Pid") or 0)
        if sb.get("BootId") == boot and alive(pid, int(sb.get("StartTime") or -1)):
            _adopt(core, box, pid)
            return
        code = None
        if sb.get("BootId") == boot:
            status = _status_after_death(core, pid, int(sb.get("StartTime") or -1))
            code = None if status is None else exit_code_of(status)
        with contextlib.suppress(ContainerNotFound):
            box.rc = core.runtime_for(box.rec).get(box.id)
        box.exited(255 if code is None else code,
                   "" if code is not None else
                   "the container stopped while the supervisor was not running; its exit code is unknown")
        return
    _discard_runtime_leftovers(core, box)
    with contextlib.suppress(SandboxError, OSError):
        setup.unmount_rootfs(box.dir)
    policy = (box.rec["HostConfig"].get("RestartPolicy") or {}).get("Name")
    if st.get("Restarting") or (policy in ("always", "unless-stopped") and sb.get("HasBeenStarted")
                                and not sb.get("ManualStop")):
        with contextlib.suppress(SandboxError):
            box.start()


def _discard_runtime_leftovers(core: Core, box: Box) -> None:
    """What a start killed half-way left in the runtime: its state, cgroup and init.

    The record says "created" (or "exited") because the supervisor died
    before it could write "running"; the runtime may have made the container
    all the same, or half of it.  Left there, the init (blocked before its
    command, or already running it) would run unseen, and every later start
    would fail with "container exists".  A container that is not running has
    nothing in the runtime, so whatever is there goes.
    """
    runtime = core.runtime_for(box.rec)
    if not os.path.isdir(os.path.join(runtime.root, box.id)):
        return      # the usual case: no runtime state (both runtimes keep one directory per id)
    try:
        spec = json.loads((box.dir / "bundle" / "config.json").read_bytes())
    except (OSError, ValueError):
        spec = None
    try:
        runtime.discard(box.id, spec)
    except (SandboxError, OSError):
        traceback.print_exc()


def _status_after_death(core: Core, pid: int, start: int) -> int | None:
    """The wait status of a container init that died while no supervisor ran."""
    deadline = time.monotonic() + KEEPER_WAIT
    while True:
        status = kept_exit_status(core.exits_dir, pid, start)
        if status is None:
            status = zombie_exit_status(pid)
        if status is not None or time.monotonic() >= deadline or not _keepers_alive(core):
            return status
        time.sleep(0.01)


def _keepers_alive(core: Core) -> bool:
    """Whether an exit keeper of an earlier supervisor may still be writing (it says so in /proc)."""
    marker = str(core.exits_dir).encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == core.keeper:
            continue
        with contextlib.suppress(OSError), open(f"/proc/{entry.name}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
            if marker in argv and any(a.endswith(b"keeper.py") for a in argv):
                return True
    return False


def _adopt(core: Core, box: Box, pid: int) -> None:
    """Take over a container that kept running while no supervisor was there."""
    box.rc = core.runtime_for(box.rec).get(box.id)
    box.log = box.open_log()
    box.open_fifo_reader("stdout.fifo", protocol.STDOUT)
    box.open_fifo_reader("stderr.fifo", protocol.STDERR)
    keeper = box.rec["Sandbox"].get("TtyKeeper")
    if box.rec["Config"].get("Tty") and keeper:
        box.adopt_tty(int(keeper[0]), int(keeper[1]))   # its keeper kept the terminal alive
    try:
        pidfd = kernel.pidfd_open(pid)
    except SandboxError:
        box.exited(255, "the container's init vanished during recovery")
        return
    box.pidfd = pidfd

    start = int(box.rec["Sandbox"].get("StartTime") or -1)
    deadline: list[float] = []

    def on_pidfd() -> None:
        if box.pidfd is None:
            return
        code = exit_code_from_pidfd(pidfd, pid)
        if code is None:
            status = kept_exit_status(core.exits_dir, pid, start)
            code = None if status is None else exit_code_of(status)
        if code is None:
            # The pidfd is readable once the init is a zombie; the keeper that
            # reaps it writes the status a moment later.
            deadline.append(deadline[0] if deadline else time.monotonic() + KEEPER_WAIT)
            if time.monotonic() < deadline[0]:
                core.loop.remove_reader(pidfd)
                core.loop.call_later(0.01, lambda: core.loop.add_reader(pidfd, on_pidfd))
                return
        box.exited(255 if code is None else code,
                   "" if code is not None else "exit code unknown: the container was adopted "
                   "by a restarted supervisor, and neither an exit keeper nor this kernel kept it")

    core.loop.add_reader(pidfd, on_pidfd)
    if box.networked:
        try:
            core.network.adopt(box.rec, pid)
        except Exception:  # noqa: BLE001 - it runs; its network may be degraded, which the log says
            traceback.print_exc()
    box.health.schedule()
