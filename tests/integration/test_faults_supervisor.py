"""``kill -9`` of the supervisor in the middle of create, start, exec and rm: nothing lost, nothing left.

Each test sends one request from a thread while this thread watches for the
phase it wants to interrupt -- a directory, a lease, a mount, a veth or a
cgroup appearing, a process in the cgroup, a record saying "removing" -- or
for a small delay to pass, and then SIGKILLs the store's supervisor.  The
next supervisor (started by the next call, as a user's next command would)
must then show the container in a state Docker could be in: created,
running with its init alive, exited with a real exit code, or gone.  ``rm
-f`` must take everything away -- mounts, cgroups, processes, veths, the
runtime's state, the image lease, the anonymous volumes ``-v`` asked for --
and the interrupted operation, done again, must work.

Where the phase is followed by enough work (milliseconds, against a poll of
microseconds) the test also asserts that the kill landed before the
answer, so it proves the interruption and not only the recovery.
test_supervisor_kill.py covers kills while containers merely run.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sandbox import Engine
from sandbox.errors import ContainerNotFound, SupervisorError, SupervisorLost
from tests import leaks
from tests.conftest import requires_root, requires_tool
from tests.integration.container_env import engine  # noqa: F401

pytestmark = requires_root

CGROUP_ROOT = Path("/sys/fs/cgroup")


# ---------------------------------------------------------------- the kill

@dataclass
class Outcome:
    """What the request did: its result or error, and whether the trigger was seen and the kill sent."""

    result: Any = None
    error: BaseException | None = None
    fired: bool = False

    @property
    def interrupted(self) -> bool:
        """The request never got its answer: the kill landed while the supervisor worked on it."""
        return self.fired and isinstance(self.error, SupervisorError)


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    """Until ``pid`` is no process (its parent, the exit keeper, reaps it at once)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return
        except OSError:
            return
        time.sleep(0.005)
    raise AssertionError(f"supervisor {pid} still there {timeout} s after SIGKILL")


def kill_during(engine: Engine, request: Callable[[], Any], when: Callable[[], bool],
                timeout: float = 20.0) -> Outcome:
    """Run ``request`` in a thread; SIGKILL the supervisor as soon as ``when()`` is true.

    The supervisor killed is the one that runs before the request (started
    here if none does); it is killed also when the request ended before the
    trigger was seen.  Returns once the request has returned or failed.
    """
    pid = int(engine.supervisor.call("ping")["pid"])
    out = Outcome()
    done = threading.Event()

    def run() -> None:
        try:
            out.result = request()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            out.error = e
        finally:
            done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not done.is_set() and time.monotonic() < deadline:
        if when():
            os.kill(pid, signal.SIGKILL)
            out.fired = True
            break
        time.sleep(0)               # let the request's thread have the GIL when it wants it
    thread.join(timeout)
    assert not thread.is_alive(), "the request hung after the supervisor was killed"
    if not out.fired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    engine.supervisor.close()
    return out


def kill_now(engine: Engine) -> None:
    """SIGKILL the running supervisor (started first if none runs) and wait until it is gone."""
    pid = int(engine.supervisor.call("ping")["pid"])
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    engine.supervisor.close()


def after(ms: float) -> Callable[[], bool]:
    """A trigger that fires ``ms`` milliseconds after its first poll (the request's start)."""
    start: list[float] = []

    def due() -> bool:
        if not start:
            start.append(time.monotonic())
        return time.monotonic() - start[0] >= ms / 1000
    return due


def check_outcome(out: Outcome, phase: str, must_interrupt: tuple[str, ...]) -> None:
    """The kill came before the answer in the phases followed by milliseconds of work.

    The others (the last writes before an answer) may flash by between two
    polls; their tests still check the recovery, whenever the kill landed.
    """
    if phase in must_interrupt:
        assert out.interrupted, f"the kill at {phase!r} came after the answer: {out}"


# ---------------------------------------------------------------- what to look at

def container_dirs(engine: Engine) -> set[str]:
    path = engine.root / "containers"
    return set(os.listdir(path)) if path.exists() else set()


def new_container_dir(engine: Engine, before: set[str]) -> Path | None:
    fresh = [n for n in container_dirs(engine) - before if len(n) == 64]
    return engine.root / "containers" / fresh[0] if fresh else None


def cgroup_dirs(cid: str) -> list[Path]:
    """Every directory of container ``cid``'s cgroup: one per v1 controller, or the v2 one."""
    found = [CGROUP_ROOT / "sandbox" / cid] if (CGROUP_ROOT / "sandbox" / cid).is_dir() else []
    for entry in os.scandir(CGROUP_ROOT):
        if entry.is_dir(follow_symlinks=False) and (Path(entry.path) / "sandbox" / cid).is_dir():
            found.append(Path(entry.path) / "sandbox" / cid)
    return found


def cgroup_procs(cid: str) -> list[int]:
    pids: set[int] = set()
    for d in cgroup_dirs(cid):
        try:
            pids.update(int(p) for p in (d / "cgroup.procs").read_text().split())
        except OSError:
            continue
    return sorted(pids)


def processes_of(cid: str) -> list[int]:
    """Processes whose cgroup names ``cid`` (read from /proc: a removed group hides none)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cgroup") as f:
                    if cid in f.read():
                        out.append(int(entry))
            except OSError:
                continue
    return out


def stray_supervisor_forks(engine: Engine) -> list[str]:
    """Live processes forked from a supervisor of this store (a half-spawned init or exec) but the
    current one and the spare init it keeps parked (sandbox/runtime/spare.py)."""
    current = int(engine.supervisor.call("ping")["pid"])
    out = []
    for p in leaks._processes((str(engine.root),)):
        if p.pid != current and p.state != "Z" and "sandbox.supervisor" in p.cmdline:
            with contextlib.suppress(OSError), open(f"/proc/{p.pid}/comm") as f:
                comm = f.read().strip()
                if comm == "sandbox-tty":     # a -t container's terminal keeper may outlive it
                    continue
                if comm == "sandbox-spare" and parent_of(p.pid) == current:
                    continue
                out.append(str(p))
    return out


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        raw = f.read()
    return int(raw[raw.rfind(")") + 2:].split()[1])


def is_mounted(path: Path) -> bool:
    try:
        return os.stat(path).st_dev != os.stat(path.parent).st_dev
    except FileNotFoundError:
        return False


def network_state() -> set[str]:
    """veth interfaces and named network namespaces: what a container's network could leave."""
    netns = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    return set(leaks._veths()) | {f"netns {n}" for n in netns}


def new_veth(before: set[str]) -> Callable[[], bool]:
    return lambda: any(leaks._driver(n) == "veth" for n in set(os.listdir("/sys/class/net")) - before)


def record_status(engine: Engine, cid: str) -> str | None:
    try:
        with open(engine.root / "containers" / cid / "container.json", "rb") as f:
            return str(json.loads(f.read())["State"]["Status"])
    except (OSError, ValueError):
        return None


def anonymous_volumes(engine: Engine) -> set[str]:
    return {v.name for v in engine.volumes.list() if len(v.name) == 64}


def assert_consistent(engine: Engine, cid: str) -> str:
    """The next supervisor shows the container in a state Docker could be in; that state."""
    engine.ensure_supervisor()                # the next one: it recovers before it answers
    c = engine.containers.get(cid)
    st = c.attrs["State"]
    assert st["Status"] in ("created", "running", "exited"), st
    if st["Status"] == "running":
        pid = int(st["Pid"])
        assert pid > 0 and os.path.exists(f"/proc/{pid}"), f"running, but its init {pid} is gone: {st}"
        with open(f"/proc/{pid}/stat") as f:
            assert int(f.read().rsplit(")", 1)[1].split()[19]) == c.attrs["Sandbox"]["StartTime"]
    else:
        assert not st["Running"] and st["Pid"] == 0, st
        assert not is_mounted(c.dir / "rootfs"), "not running, and its rootfs is still mounted"
        assert not cgroup_procs(cid), f"{st['Status']}, but processes run in its cgroup: {cgroup_procs(cid)}"
    if st["Status"] == "exited" and st["ExitCode"] == 255:
        assert "unknown" in st["Error"], st        # a code nobody saw is said to be unknown
    assert not stray_supervisor_forks(engine), stray_supervisor_forks(engine)
    return str(st["Status"])


def assert_gone(engine: Engine, cid: str, network_before: set[str]) -> None:
    """Nothing of ``cid`` is left: record, directories, mounts, cgroups, processes, runtime state, lease, veths."""
    with pytest.raises(ContainerNotFound):
        engine.containers.get(cid)
    cdir = engine.root / "containers" / cid
    engine.supervisor.call("ping")            # answered once the idle-time removal of its files ran
    deadline = time.monotonic() + 5
    while (cdir.exists() or cdir.with_name(f".removing-{cid}").exists()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not cdir.exists() and not cdir.with_name(f".removing-{cid}").exists()
    assert not leaks.mounts_below(str(cdir)) and not leaks.mounts_below(str(cdir.with_name(f".removing-{cid}")))
    assert not cgroup_dirs(cid), cgroup_dirs(cid)
    assert not processes_of(cid), processes_of(cid)
    assert not (engine.root / "run" / "runtime" / cid).exists(), "the runtime's state of it is left"
    assert not (engine.root / "leases" / f"container-{cid}.json").exists(), "its image lease is left"
    deadline = time.monotonic() + 5           # a namespace goes a moment after its last process
    while network_state() - network_before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not network_state() - network_before, f"left: {network_state() - network_before}"


def assert_store_tidy(engine: Engine) -> None:
    """No container directory without a record, no lease or half-removed volume of nobody."""
    engine.supervisor.call("ping")
    records = set(engine.containers.records.ids())
    strays = [n for n in container_dirs(engine) if n not in records]
    assert not strays, f"directories of no container: {strays}"
    leases = {p.name[len("container-"):-len(".json")] for p in (engine.root / "leases").glob("container-*.json")}
    assert leases <= records, f"leases of containers that do not exist: {leases - records}"
    volumes = engine.root / "volumes"
    assert not [n for n in (os.listdir(volumes) if volumes.exists() else []) if n.startswith(".")]


# ---------------------------------------------------------------- create

def _create_trigger(engine: Engine, phase: str, before: set[str]) -> Callable[[], bool]:
    volumes_dir = engine.root / "volumes"
    volumes_before = set(os.listdir(volumes_dir)) if volumes_dir.exists() else set()

    def volume_made() -> bool:
        return volumes_dir.exists() and bool(set(os.listdir(volumes_dir)) - volumes_before)

    def dir_made() -> bool:
        return new_container_dir(engine, before) is not None

    def leased() -> bool:
        cdir = new_container_dir(engine, before)
        return cdir is not None and (engine.root / "leases" / f"container-{cdir.name}.json").exists()

    def record_written() -> bool:              # its temp file, or the record itself
        cdir = new_container_dir(engine, before)
        return cdir is not None and any(n.startswith("container.json") for n in os.listdir(cdir))

    if phase.startswith("delay-"):
        return after(float(phase[len("delay-"):]))
    return {"volume": volume_made, "dir": dir_made, "lease": leased, "record": record_written}[phase]


@pytest.mark.parametrize("phase", ["dir", "volume", "lease", "record", "delay-0", "delay-1", "delay-2"])
def test_kill_during_create(engine, phase):
    before = container_dirs(engine)
    volumes_before = anonymous_volumes(engine)
    network_before = network_state()

    def create() -> Any:
        return engine.containers.create("busybox", ["sh", "-c", "exit 3"], name="faulty", volumes=["/data"],
                                        network_mode="none")

    out = kill_during(engine, create, _create_trigger(engine, phase, before))
    check_outcome(out, phase, must_interrupt=("dir", "volume"))
    assert_store_tidy(engine)                  # a create cut short leaves no directory, lease or volume
    made = [n for n in container_dirs(engine) - before if len(n) == 64]
    assert len(made) <= 1
    if out.error is None:
        assert made == [out.result.id]         # answered: it exists
    for cid in made:                           # written before the kill, not answered: it exists too
        assert assert_consistent(engine, cid) == "created"
        engine.containers.get(cid).remove(force=True, v=True)
        assert_gone(engine, cid, network_before)
    assert anonymous_volumes(engine) == volumes_before, "a volume of a create that did not happen is left"
    c = create()                               # done again: the name is free, and it runs
    c.start()
    assert c.wait()["StatusCode"] == 3
    c.remove(v=True)
    assert anonymous_volumes(engine) == volumes_before


# ---------------------------------------------------------------- start

def _start_trigger(engine: Engine, cid: str, phase: str) -> Callable[[], bool]:
    rootfs = engine.root / "containers" / cid / "rootfs"
    if phase.startswith("delay-"):
        return after(float(phase[len("delay-"):]))
    return {
        "mounted": lambda: is_mounted(rootfs),                          # the network is set up next
        "veth": new_veth(set(os.listdir("/sys/class/net"))),            # then the cgroup
        "cgroup": lambda: bool(cgroup_dirs(cid)),                       # then the init is spawned
        "init": lambda: bool(cgroup_procs(cid)),                        # and joins its group
        # the runtime has written its state: the init waits on its exec fifo for the start
        "ready": lambda: (engine.root / "run" / "runtime" / cid / "state.json").exists(),
        "recorded": lambda: record_status(engine, cid) == "running",    # the last step before the reply
    }[phase]


@pytest.mark.parametrize("phase", ["mounted", "veth", "cgroup", "init", "ready", "recorded",
                                   "delay-2", "delay-5", "delay-10"])
def test_kill_during_start(engine, phase):
    network_before = network_state()
    c = engine.containers.create("busybox", ["sleep", "60"])           # on the default bridge
    out = kill_during(engine, c.start, _start_trigger(engine, c.id, phase))
    check_outcome(out, phase, must_interrupt=("mounted", "veth", "cgroup", "init", "ready"))
    state = assert_consistent(engine, c.id)
    if out.error is None:
        assert state == "running"
    if state != "running":
        c.start()                                                       # the start done again works
    c.reload()
    assert c.status == "running" and c.attrs["NetworkSettings"]["IPAddress"]
    assert c.exec_run(["true"]).exit_code == 0
    c.remove(force=True, v=True)
    assert_gone(engine, c.id, network_before)
    assert_store_tidy(engine)


@requires_tool("strace")
def test_kill_while_the_init_waits_for_its_start(engine):
    """The window between the runtime's create and its start, hit exactly.

    strace delivers the SIGKILL as the supervisor opens the init's exec fifo
    to let it run: the init is fully made and blocked, a copy of every
    descriptor of the supervisor in hand (it is a fork of it).  Before the
    init let go of them, the client of the start hung for good, and no new
    supervisor could take the store's lock.
    """
    network_before = network_state()
    c = engine.containers.create("busybox", ["sleep", "60"])
    fifo = engine.root / "run" / "runtime" / c.id / "exec.fifo"
    pid = int(engine.supervisor.call("ping")["pid"])
    tracer = subprocess.Popen(["strace", "-p", str(pid), "-o", "/dev/null", "-e", "trace=openat", "-P", str(fifo),
                               "-e", "inject=openat:signal=KILL"], stderr=subprocess.PIPE, text=True)
    try:
        assert tracer.stderr is not None and "attached" in tracer.stderr.readline()
        out = kill_during(engine, c.start, lambda: False, timeout=10.0)   # the kill is strace's
        assert isinstance(out.error, SupervisorError), out                # and it came before the answer
        tracer.wait(10)
    finally:
        if tracer.poll() is None:
            tracer.kill()
            tracer.wait()
    assert assert_consistent(engine, c.id) == "created"     # the blocked init went with the recovery
    c.start()
    assert c.reload().status == "running"
    c.remove(force=True)
    assert_gone(engine, c.id, network_before)


@pytest.mark.parametrize("phase", ["cgroup", "init", "ready"])
def test_rm_right_after_a_start_was_cut_short(engine, phase):
    """No start in between: ``rm -f`` alone takes the half-made container away whole."""
    network_before = network_state()
    c = engine.containers.create("busybox", ["sleep", "60"])
    kill_during(engine, c.start, _start_trigger(engine, c.id, phase))
    c.remove(force=True, v=True)
    assert_gone(engine, c.id, network_before)


# ---------------------------------------------------------------- exec

@pytest.fixture
def running(engine):
    c = engine.containers.run("busybox", ["sleep", "60"], detach=True)
    yield c
    c.remove(force=True, v=True)


def only_init_left(c: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while cgroup_procs(c.id) != [c.pid]:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.parametrize("phase", ["spawned", "delay-0", "delay-1", "delay-3"])
def test_kill_while_an_exec_starts(engine, running, phase):
    init = running.pid
    when = (lambda: len(cgroup_procs(running.id)) > 1) if phase == "spawned" else \
        after(float(phase[len("delay-"):]))
    out = kill_during(engine, lambda: running.exec_run(["sh", "-c", "sleep 0.3; exit 7"]), when)
    if out.error is None:
        assert out.result.exit_code == 7       # answered: the right code, never another
    else:
        assert isinstance(out.error, SupervisorError), repr(out.error)
    assert assert_consistent(engine, running.id) == "running"
    assert running.reload().pid == init        # the container itself was not touched
    assert only_init_left(running)             # the exec ended, or never was: nothing half-spawned stays
    assert running.exec_run(["sh", "-c", "echo again; exit 5"]) == (5, b"again\n")


def test_an_exec_that_ends_while_no_supervisor_runs(engine, running):
    marker = running.dir / "upper" / "tmp" / "exec-started"
    out = kill_during(engine, lambda: running.exec_run(["sh", "-c", "touch /tmp/exec-started; sleep 0.5; exit 7"]),
                      marker.exists)
    assert out.interrupted
    # Not a made-up number: the client says the code is unknown (Docker's exec inspect: ExitCode null).
    assert isinstance(out.error, SupervisorLost) and "exit code is unknown" in str(out.error), str(out.error)
    assert only_init_left(running)             # it ended, with no supervisor to see it
    assert assert_consistent(engine, running.id) == "running"
    assert running.exec_run(["sh", "-c", "exit 5"]).exit_code == 5


def _exec_done(api: Any, exec_id: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        doc: dict[str, Any] = api.exec_inspect(exec_id)
        if not doc["Running"] and (doc["ExitCode"] is not None or time.monotonic() > deadline):
            return doc
        assert time.monotonic() < deadline, doc
        time.sleep(0.02)


def test_exec_inspect_says_null_for_an_exec_that_ended_while_no_supervisor_ran(engine, running):
    """Docker's API: ``GET /exec/ID/json`` has ExitCode null when the daemon does not know it (never 126)."""
    docker = pytest.importorskip("docker")
    from tests.integration.api_env import DaemonProcess
    daemon = DaemonProcess(engine.root, socket_path=engine.root / "faults.sock").start()
    try:
        api = docker.APIClient(base_url=daemon.host, version="1.41")
        known = api.exec_create(running.id, ["sh", "-c", "exit 4"])["Id"]
        api.exec_start(known, detach=True)
        assert _exec_done(api, known)["ExitCode"] == 4
        marker = running.dir / "upper" / "tmp" / "api-exec"
        lost = api.exec_create(running.id, ["sh", "-c", "touch /tmp/api-exec; sleep 0.5; exit 7"])["Id"]
        api.exec_start(lost, detach=True)
        deadline = time.monotonic() + 10
        while not marker.exists():
            assert time.monotonic() < deadline, "the exec did not start"
            time.sleep(0.005)
        kill_now(engine)
        assert only_init_left(running)         # it ended while no supervisor ran
        doc = _exec_done(api, lost, timeout=2.0)
        assert not doc["Running"] and doc["ExitCode"] in (None, 7), doc   # unknown, or right
        assert api.exec_inspect(known)["ExitCode"] == 4                    # what was known stays known
        again = api.exec_create(running.id, ["sh", "-c", "exit 5"])["Id"]
        api.exec_start(again, detach=True)
        assert _exec_done(api, again)["ExitCode"] == 5
        api.close()
    finally:
        daemon.stop()


def test_an_exec_still_running_after_the_kill_goes_with_rm(engine):
    network_before = network_state()
    c = engine.containers.run("busybox", ["sleep", "60"], detach=True)
    marker = c.dir / "upper" / "tmp" / "exec-started"
    out = kill_during(engine, lambda: c.exec_run(["sh", "-c", "touch /tmp/exec-started; exec sleep 60"]),
                      marker.exists)
    assert out.interrupted
    assert assert_consistent(engine, c.id) == "running"
    assert len(cgroup_procs(c.id)) == 2        # the exec outlived its supervisor, in the container
    c.remove(force=True)
    assert_gone(engine, c.id, network_before)


# ---------------------------------------------------------------- rm

def _rm_trigger(engine: Engine, c: Any, volume: str, phase: str) -> Callable[[], bool]:
    cdir = engine.root / "containers" / c.id
    vdir = engine.root / "volumes" / volume
    if phase.startswith("delay-"):
        return after(float(phase[len("delay-"):]))
    return {
        "removing": lambda: record_status(engine, c.id) == "removing",  # then the runtime's delete
        "killed": lambda: not cgroup_procs(c.id),                        # then the unmount
        "unmounted": lambda: not is_mounted(cdir / "rootfs"),            # then the record goes
        "renamed": lambda: not cdir.exists(),                            # in one step; then -v's volumes
        "volume": lambda: not vdir.exists(),                             # renamed away; then deleted
    }[phase]


@pytest.mark.parametrize("phase", ["removing", "killed", "unmounted", "renamed", "volume", "delay-2", "delay-5"])
def test_kill_during_rm(engine, phase):
    network_before = network_state()
    c = engine.containers.run("busybox", ["sleep", "60"], detach=True, volumes=["/data"])
    volume = c.attrs["Mounts"][0]["Name"]
    out = kill_during(engine, lambda: c.remove(force=True, v=True), _rm_trigger(engine, c, volume, phase))
    check_outcome(out, phase, must_interrupt=("killed",))
    try:
        state = assert_consistent(engine, c.id)
    except ContainerNotFound:
        state = "gone"
    if out.error is None:
        assert state == "gone"
    if state != "gone":
        c.remove(force=True, v=True)           # rm done again works
    assert_gone(engine, c.id, network_before)
    assert volume not in anonymous_volumes(engine), "rm -v was asked, and its anonymous volume is left"
    assert_store_tidy(engine)


@pytest.mark.parametrize("phase", ["removing", "renamed"])
def test_kill_during_rm_without_v_keeps_the_volume(engine, phase):
    """The next supervisor finishes the removal as it was asked: without ``-v`` the volume and its data stay."""
    network_before = network_state()
    for _attempt in range(5):                  # both phases last about a millisecond: try until one is hit
        c = engine.containers.run("busybox", ["sh", "-c", "echo kept > /data/f; sleep 60"], detach=True,
                                  volumes=["/data"], network_mode="none")
        volume = c.attrs["Mounts"][0]["Name"]
        data = engine.volumes.store.mountpoint(volume)
        deadline = time.monotonic() + 5
        while not (data / "f").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        out = kill_during(engine, functools.partial(c.remove, force=True), _rm_trigger(engine, c, volume, phase))
        with pytest.raises(ContainerNotFound):  # the next supervisor finished the removal
            engine.containers.get(c.id)
        assert_gone(engine, c.id, network_before)
        assert (data / "f").read_text() == "kept\n", "rm without -v, and its volume is gone"
        engine.volumes.get(volume).remove()
        if out.interrupted:
            break
    assert out.interrupted, "the kill never landed in the phase"
