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
import os
import shutil
import traceback
from pathlib import Path

from .. import kernel
from ..containers import setup
from ..containers.records import boot_id
from ..errors import ContainerNotFound, SandboxError
from . import protocol
from .box import Box
from .core import Core
from .reaping import alive, exit_code_from_pidfd, exit_code_of, zombie_exit_status


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
            setup.unmount_rootfs(Path(entry.path))
            shutil.rmtree(entry.path, ignore_errors=True)
    for rec in core.containers.all():
        box = Box(core, rec)
        core.boxes[box.id] = box
        if rec["State"].get("Status") == "removing":
            box.remove(force=True, volumes=True)
            continue
        try:
            _recover_one(core, box, boot)
        except Exception:  # noqa: BLE001 - one broken record must not stop the others
            traceback.print_exc()
    _recover_network(core)


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
            status = zombie_exit_status(pid)
            code = None if status is None else exit_code_of(status)
        with contextlib.suppress(ContainerNotFound):
            box.rc = core.runtime_for(box.rec).get(box.id)
        box.exited(255 if code is None else code,
                   "" if code is not None else
                   "the container stopped while the supervisor was not running; its exit code is unknown")
        return
    with contextlib.suppress(SandboxError, OSError):
        setup.unmount_rootfs(box.dir)
    policy = (box.rec["HostConfig"].get("RestartPolicy") or {}).get("Name")
    if st.get("Restarting") or (policy in ("always", "unless-stopped") and sb.get("HasBeenStarted")
                                and not sb.get("ManualStop")):
        with contextlib.suppress(SandboxError):
            box.start()


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

    def on_pidfd() -> None:
        if box.pidfd is None:
            return
        code = exit_code_from_pidfd(pidfd, pid)
        box.exited(255 if code is None else code,
                   "" if code is not None else "exit code unknown: the container was adopted "
                   "by a restarted supervisor and this kernel cannot report it")

    core.loop.add_reader(pidfd, on_pidfd)
    if box.networked:
        try:
            core.network.adopt(box.rec, pid)
        except Exception:  # noqa: BLE001 - it runs; its network may be degraded, which the log says
            traceback.print_exc()
    box.health.schedule()
