"""Rootless limits on a delegated cgroup v2 subtree, for real (issue 19).

Runs in the cgroup2 tier only (``python tools/cgroup2_tier.py
tests/integration/test_rootless_cgroup2.py``): there ``/sys/fs/cgroup`` is a
pure cgroup2 mount with the controllers that could leave their v1 hierarchy.
The test makes what systemd's ``Delegate=yes`` makes for a user's unit: a
group whose directory and cgroup.procs, cgroup.subtree_control and
cgroup.threads belong to the user (cgroup-v2.rst "Delegation"), and starts
each of the user's commands in it, as a login session's processes start in
their scope.  The user is test_rootless.py's (useradd, subordinate ranges,
Debian's /usr/bin/python3 with this checkout).  Afterwards the group is
killed and removed (cgroup.kill), and the user, their ranges and their /tmp
directories go with test_rootless.py's teardown.

A limit whose controller did not move in this tier (memory, when a v1 memory
group of this machine's is in use) skips, or checks that the engine names
the controller.  Containers run with ``--network none`` but one: with the
host's network a rootless container binds the host's /sys, where the kernel
refuses a fresh cgroup2 mount (EBUSY), and the runtime binds the container's
own group instead (sandbox/runtime/rootfs.py ``_mount_cgroup_v2``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.cgroups import detect
from sandbox.cgroups.delegation import LEAF
from sandbox.cgroups.v2 import WANTED
from tests.conftest import requires_root
from tests.integration.test_rootless import User, user  # noqa: F401 - a fixture

TIER_FLAG = "SANDBOX_TEST_CGROUP2_TIER"     # tools/cgroup2_tier.py sets it
ROOT = Path("/sys/fs/cgroup")

pytestmark = [requires_root, pytest.mark.skipif(
    not os.environ.get(TIER_FLAG) or detect(ROOT) != "v2",
    reason="runs in the cgroup2 tier only, where /sys/fs/cgroup is cgroup2: "
           "python tools/cgroup2_tier.py tests/integration/test_rootless_cgroup2.py")]


class DelegatedUser(User):
    """The user as a session with Delegate=yes leaves them: each command starts in their group.

    Root moves the new process (systemd does it for a session's scope) and
    setpriv drops to the user.  Once the engine has moved the group's own
    processes into the ``init`` leaf, new ones start there, as children of a
    process in ``init`` would.
    """

    group: Path | None = None

    def run(self, *argv: str, check: bool = True, timeout: float = 120,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        if self.group is None:
            return super().run(*argv, check=check, timeout=timeout, input=input)
        start = self.group / LEAF if (self.group / LEAF).is_dir() else self.group
        r = subprocess.run(["setpriv", f"--reuid={self.pw.pw_uid}", f"--regid={self.pw.pw_gid}", "--clear-groups",
                            "--", *argv], env=self.env, cwd=self.home, capture_output=True, text=True,
                           timeout=timeout, input=input,
                           preexec_fn=lambda: (start / "cgroup.procs").write_text("0"))
        if check and r.returncode != 0:
            raise AssertionError(f"{argv} as {self.name} in {start} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
                                 f"\n{tree(self.group)}")
        return r


def tree(group: Path) -> str:
    """The delegated subtree's groups, controllers and processes (for a failure's message)."""
    lines = []
    for dirpath, _dirs, _files in os.walk(group):
        d = Path(dirpath)
        info = {name: (d / name).read_text().split() for name in
                ("cgroup.controllers", "cgroup.subtree_control", "cgroup.procs") if (d / name).exists()}
        lines.append(f"  {d.relative_to(group.parent)}: {info}")
    return "\n".join(lines)


@contextlib.contextmanager
def delegated_group(uid: int, gid: int) -> Iterator[Path]:
    """A top-level group delegated to ``uid`` as systemd does it; killed and removed afterwards."""
    group = ROOT / f"rlcg-{secrets.token_hex(3)}.scope"
    group.mkdir()
    try:
        for path in (group, group / "cgroup.procs", group / "cgroup.subtree_control", group / "cgroup.threads"):
            os.chown(path, uid, gid)
        yield group
    finally:
        if (group / "cgroup.kill").exists():
            (group / "cgroup.kill").write_text("1")
        deadline = time.monotonic() + 10
        while "populated 1" in (group / "cgroup.events").read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        for dirpath, _dirs, _files in os.walk(group, topdown=False):
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(dirpath)


@pytest.fixture(scope="module")
def duser(user):  # noqa: F811 - test_rootless's fixture
    """test_rootless's user, every command of theirs in a group delegated to them."""
    user.sandbox("system", "supervisor", "stop", check=False)   # the next one starts in the group
    u = DelegatedUser(user.name, user.busybox)
    with delegated_group(u.pw.pw_uid, u.pw.pw_gid) as group:
        u.group = group
        yield u
        u.sandbox("rm", "-f", *u.sandbox("ps", "-aq").stdout.split(), check=False)
        u.sandbox("system", "supervisor", "stop", check=False)


def controllers(u: DelegatedUser) -> set[str]:
    assert u.group is not None
    return set((u.group / "cgroup.controllers").read_text().split())


def requires(u: DelegatedUser, name: str) -> None:
    if name not in controllers(u):
        pytest.skip(f"the {name} controller did not move to cgroup v2 in this tier (see the tier's first lines)")


def container_group(u: DelegatedUser, name: str) -> Path:
    """The group the container's init is in, from /proc (no pid namespace between us and the holder)."""
    pid = json.loads(u.sandbox("inspect", name).stdout)[0]["State"]["Pid"]
    own = Path(f"/proc/{pid}/cgroup").read_text().split("0::", 1)[1].strip()
    return ROOT / own.lstrip("/")


def test_info_says_limits_go_in_the_delegated_group(duser):
    allows = duser.sandbox("info", "--format", "{{.Allows}}").stdout
    assert f"cgroup limits in the delegated cgroup /{duser.group.name} " in allows, allows


def test_a_containers_group_is_below_the_delegated_one_whose_processes_moved_to_a_leaf(duser):
    pids = "pids" in controllers(duser)
    duser.sandbox("run", "--network", "none", "-d", "--name", "where", *(["--pids-limit", "20"] if pids else []),
                  "busybox", "sleep", "60")
    try:
        group = container_group(duser, "where")
        assert group.parent == duser.group / "sandbox", group
        if pids:
            assert (group / "pids.max").read_text().strip() == "20"
        # "no internal processes": the user's own processes (the supervisor among them) live in init now
        assert (duser.group / "cgroup.procs").read_text() == ""
        assert (duser.group / LEAF / "cgroup.procs").read_text().split()
        enabled = set((duser.group / "cgroup.subtree_control").read_text().split())
        assert enabled == controllers(duser) & set(WANTED), enabled
    finally:
        duser.sandbox("rm", "-f", "where")


def test_runc_rootless_joins_the_group_made_below_the_delegated_one(duser):
    """--runtime runc, rootless: the engine makes the group (and its limits) where ours would be, runc joins it."""
    pids = "pids" in controllers(duser)
    duser.sandbox("run", "--runtime", "runc", "--network", "none", "-d", "--name", "viarunc",
                  *(["--pids-limit", "20"] if pids else []), "busybox", "sleep", "60")
    try:
        group = container_group(duser, "viarunc")
        assert group.parent == duser.group / "sandbox", group
        if pids:
            assert (group / "pids.max").read_text().strip() == "20"
        duser.sandbox("pause", "viarunc")     # runc's freezer on our group (cgroup.freeze)
        assert (group / "cgroup.freeze").read_text().strip() == "1"
        duser.sandbox("unpause", "viarunc")
    finally:
        duser.sandbox("rm", "-f", "viarunc")
    assert not group.exists()


def test_on_the_hosts_network_the_container_sees_its_own_group(duser):
    """The host's /sys is bound in, so /sys/fs/cgroup is the container's group bound, not a new mount."""
    pids = "pids" in controllers(duser)
    r = duser.sandbox("run", "--network", "host", "--rm", *(["--pids-limit", "7"] if pids else []), "busybox",
                      "sh", "-c", "cat /proc/self/cgroup; ls /sys/fs/cgroup; cat /sys/fs/cgroup/pids.max 2>&1 || true")
    assert "cgroup.procs" in r.stdout, r.stdout + r.stderr
    if pids:
        assert r.stdout.rstrip().endswith("7"), r.stdout     # its own limit, read at its cgroup root


def test_pids_limit_stops_a_fork(duser):
    requires(duser, "pids")
    r = duser.sandbox("run", "--network", "none", "--rm", "--pids-limit", "4", "busybox", "sh", "-c",
                      "for i in 1 2 3 4 5 6; do sleep 2 & done; wait; echo done", check=False)
    assert "can't fork" in r.stderr + r.stdout, (r.stdout, r.stderr)


def test_memory_limit_and_an_oom_kill(duser):
    requires(duser, "memory")
    duser.sandbox("run", "--network", "none", "-d", "--name", "hog", "--memory", "32m", "--memory-swap", "32m", "busybox",
                  "sh", "-c", "sleep 1; tail /dev/zero")
    try:
        group = container_group(duser, "hog")
        assert (group / "memory.max").read_text().strip() == str(32 << 20)
        assert duser.sandbox("wait", "hog").stdout.strip() == "137"
        state = json.loads(duser.sandbox("inspect", "hog").stdout)[0]["State"]
        assert state["OOMKilled"] is True and state["ExitCode"] == 137, state
    finally:
        duser.sandbox("rm", "-f", "hog")


def test_a_controller_not_delegated_is_named(duser):
    if "memory" in controllers(duser):
        pytest.skip("memory is delegated in this tier: nothing is missing")
    r = duser.sandbox("run", "--network", "none", "--rm", "--memory", "32m", "busybox", "true", check=False)
    assert r.returncode != 0 and "memory controller" in r.stderr, r.stderr


def test_stats_read_the_group(duser):
    requires(duser, "pids")
    duser.sandbox("run", "--network", "none", "-d", "--name", "st", "busybox", "sh", "-c", "sleep 60 & sleep 60 & while :; do :; done")
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pids, cpu = duser.sandbox("stats", "--no-stream", "--format", "{{.PIDs}} {{.CPUPerc}}", "st"
                                      ).stdout.split()
            if pids == "3" and float(cpu.rstrip("%")) > 0:
                break
        assert pids == "3" and float(cpu.rstrip("%")) > 0, (pids, cpu)
        assert (container_group(duser, "st") / "pids.current").read_text().strip() == "3"
    finally:
        duser.sandbox("rm", "-f", "st")


def test_pause_freezes_the_group_and_unpause_thaws_it(duser):
    duser.sandbox("run", "--network", "none", "-d", "--name", "frz", "busybox", "sleep", "60")
    try:
        group = container_group(duser, "frz")
        duser.sandbox("pause", "frz")
        assert "frozen 1" in (group / "cgroup.events").read_text()
        assert json.loads(duser.sandbox("inspect", "frz").stdout)[0]["State"]["Status"] == "paused"
        duser.sandbox("unpause", "frz")
        assert "frozen 0" in (group / "cgroup.events").read_text()
        assert json.loads(duser.sandbox("inspect", "frz").stdout)[0]["State"]["Status"] == "running"
    finally:
        duser.sandbox("rm", "-f", "frz")


def test_update_changes_the_live_group(duser):
    requires(duser, "pids")
    duser.sandbox("run", "--network", "none", "-d", "--name", "upd", "--pids-limit", "10", "busybox", "sleep", "60")
    try:
        group = container_group(duser, "upd")
        args = ["--pids-limit", "30"] + (["--cpus", "0.5"] if "cpu" in controllers(duser) else []) + \
            (["--memory", "48m", "--memory-swap", "48m"] if "memory" in controllers(duser) else [])
        r = duser.sandbox("update", *args, "upd")
        assert "WARNING" not in r.stderr, r.stderr
        assert (group / "pids.max").read_text().strip() == "30"
        if "cpu" in controllers(duser):
            assert (group / "cpu.max").read_text().split() == ["50000", "100000"]
        if "memory" in controllers(duser):
            assert (group / "memory.max").read_text().strip() == str(48 << 20)
    finally:
        duser.sandbox("rm", "-f", "upd")


def test_kill_ends_every_process_of_the_group_and_rm_leaves_no_group(duser):
    duser.sandbox("run", "--network", "none", "-d", "--name", "gone", "busybox", "sh", "-c", "sleep 60 & sleep 60 & wait")
    group = container_group(duser, "gone")
    duser.sandbox("kill", "gone")
    assert duser.sandbox("wait", "gone").stdout.strip() == "137"
    assert not group.exists() or (group / "cgroup.procs").read_text() == ""
    duser.sandbox("rm", "gone")
    assert not group.exists()
    left = sorted(p.name for p in duser.group.iterdir() if p.is_dir())
    assert left == [LEAF], left    # the container groups and their "sandbox" parent are gone


def test_the_same_user_without_delegation_gets_the_one_line_warning(duser):
    group, duser.group = duser.group, None
    duser.sandbox("system", "supervisor", "stop", check=False)   # the next one starts outside the group
    try:
        r = duser.sandbox("run", "--network", "none", "--rm", "--memory", "64m", "busybox", "echo", "ran")
        assert r.stdout == "ran\n"
        warnings = [line for line in r.stderr.splitlines() if line.startswith("WARNING:")]
        assert len(warnings) == 1 and "--memory" in warnings[0] and "Delegate=yes" in warnings[0], r.stderr
        assert "no cgroup limits: this process is in the root cgroup" in \
            duser.sandbox("info", "--format", "{{.Allows}}").stdout
    finally:
        duser.sandbox("system", "supervisor", "stop", check=False)
        duser.group = group
