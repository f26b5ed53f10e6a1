"""config-linux.md: namespaces, id mappings, devices, cgroups, sysctl, seccomp, paths -- beside runc."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import requires_root
from tests.conformance.conftest import same

pytestmark = requires_root

NS_FILES = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts",
            "user": "user", "cgroup": "cgroup"}


def probe(both, script, edit=None):
    spec = both.spec(["sh", "-c", script])
    if edit is not None:
        edit(spec)
    return both.run(spec)


# ------------------------------------------------------------------ Namespaces

@pytest.mark.parametrize("kind", ["pid", "network", "mount", "ipc", "uts", "cgroup"])
def test_each_namespace_type_is_new(both, kind):
    """namespaces: for each type listed without a path the runtime MUST create a new one."""
    def edit(s):
        if not any(n["type"] == kind for n in s["linux"]["namespaces"]):
            s["linux"]["namespaces"].append({"type": kind})
    results = probe(both, f"readlink /proc/self/ns/{NS_FILES[kind]}", edit)
    host = os.readlink(f"/proc/self/ns/{NS_FILES[kind]}")
    for r in results.values():
        assert r.code == 0 and r.out.strip() != host


def test_a_type_left_out_is_the_hosts(both):
    """A namespace type not listed: the container MUST inherit the runtime's (here, uts)."""
    def edit(s):
        s["linux"]["namespaces"] = [n for n in s["linux"]["namespaces"] if n["type"] != "uts"]
        s.pop("hostname", None)
    host = os.readlink("/proc/self/ns/uts")
    assert same(probe(both, "readlink /proc/self/ns/uts", edit)) == (0, host + "\n")


def test_a_duplicated_type_is_an_error(both):
    """namespaces: a type listed more than once MUST be an error."""
    def edit(s):
        s["linux"]["namespaces"].append({"type": "pid"})
    results = probe(both, "true", edit)
    assert all(r.code != 0 for r in results.values())


class Holder:
    """A process in a namespace of its own, to be joined by path."""

    def __init__(self, kind: str) -> None:
        flag = {"network": "net", "mount": "mount"}.get(kind, kind)
        self.proc = subprocess.Popen(["unshare", f"--{flag}", *(["--fork"] if kind == "pid" else []),
                                      "sleep", "30"])
        time.sleep(0.2)
        pid = self.proc.pid
        if kind == "pid":       # unshare forked: its child is the one in the new pid namespace
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                pid = int(f.read().split()[0])
        self.path = f"/proc/{pid}/ns/{NS_FILES[kind]}"
        self.inode = os.readlink(self.path)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.mark.parametrize("kind", ["network", "ipc", "uts", "mount", "pid"])
def test_joining_a_namespace_by_path(both, kind):
    """namespaces[].path: the runtime MUST place the container in that namespace -- a mount
    namespace too, where the rootfs is set up and the process still finds its executable.
    Setting up a rootfs in a joined mount namespace changes it for good (pivot_root), so
    each runtime joins a namespace of its own."""
    results = {}
    for rt, bundle, cid in both.each(both.spec(["sh", "-c", f"readlink /proc/self/ns/{NS_FILES[kind]}"])):
        holder = Holder(kind)
        try:
            s = json.loads((bundle / "config.json").read_text())
            s["linux"]["namespaces"] = [n for n in s["linux"]["namespaces"] if n["type"] != kind]
            s["linux"]["namespaces"].append({"type": kind, "path": holder.path})
            (bundle / "config.json").write_text(json.dumps(s))
            r = rt("run", "--bundle", str(bundle), cid, cwd=bundle)
            rt("delete", "--force", cid)
            assert (r.code, r.out) == (0, holder.inode + "\n"), (rt.name, r)
            results[rt.name] = r.code
        finally:
            holder.close()


def test_a_namespace_path_that_does_not_exist_is_an_error(both):
    def edit(s):
        s["linux"]["namespaces"] = [n for n in s["linux"]["namespaces"] if n["type"] != "network"]
        s["linux"]["namespaces"].append({"type": "network", "path": "/proc/999999999/ns/net"})
    results = probe(both, "true", edit)
    assert all(r.code != 0 for r in results.values())
    assert "linux.namespaces" in results["sandbox"].err


@pytest.fixture
def mapped_rootfs(both):
    """A copy of the rootfs owned by host uid 100000, where that uid can reach it
    (pytest's own temporary directories are 0700)."""
    top = Path(tempfile.mkdtemp(prefix="sandbox-userns-"))
    os.chmod(top, 0o755)
    rootfs = top / "rootfs"
    subprocess.run(["cp", "-a", str(both.rootfs), str(rootfs)], check=True)
    subprocess.run(["chown", "-R", "100000:100000", str(rootfs)], check=True)
    yield rootfs
    shutil.rmtree(top)


def test_user_namespace_with_mappings(both, mapped_rootfs):
    """uidMappings/gidMappings: the runtime MUST map the ids; root inside is the mapped host id."""
    rootfs = mapped_rootfs

    def edit(s):
        s["root"]["path"] = str(rootfs)
        s["linux"]["namespaces"].append({"type": "user"})
        s["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        s["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        s["mounts"] = [m for m in s["mounts"] if m["destination"] != "/sys/fs/cgroup"]
    assert same(probe(both, "id -u; cat /proc/self/uid_map", edit)) == (
        0, "0\n         0     100000      65536\n")


# ------------------------------------------------------------------ Devices

def test_the_default_devices(both):
    """Default devices: /dev/null, zero, full, random, urandom, tty, ptmx MUST be supplied,
    and the links /dev/fd, stdin, stdout, stderr MUST be set up."""
    script = ("for d in null zero full random urandom tty; do ls -l /dev/$d | "
              "awk '{print $1, $5, $6, $10}'; done; ls -l /dev/ptmx | awk '{print $1, $11}'; "
              "for l in fd stdin stdout stderr; do readlink /dev/$l; done; "
              "echo x > /dev/null && head -c 3 /dev/zero | od -An -tx1")
    code, out = same(probe(both, script))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "crw-rw-rw- 1, 3 /dev/null"
    assert lines[6:11] == ["lrwxrwxrwx pts/ptmx", "/proc/self/fd", "/proc/self/fd/0",
                           "/proc/self/fd/1", "/proc/self/fd/2"]


def test_linux_devices_are_made_with_their_mode_and_owner(both):
    """linux.devices: MUST be available in the container, with fileMode, uid and gid."""
    def edit(s):
        s["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                                  "fileMode": 0o640, "uid": 7, "gid": 8}]
        s["linux"]["resources"]["devices"].append(
            {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"})
    assert same(probe(both, "ls -ln /dev/fuse | awk '{print $1, $3, $4, $5, $6}'", edit)) == (
        0, "crw-r----- 7 8 10, 229\n")


def test_the_device_cgroup_denies_what_the_rules_deny(both):
    """linux.resources.devices: the runtime MUST apply the list; runc's defaults stay open."""
    def edit(s):
        s["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
    code, out = same(probe(both, "cat /dev/fuse 2>&1 | head -1 | sed 's/.*: //'; "
                                 "echo ok > /dev/null && echo null-ok", edit))
    assert code == 0 and out.splitlines()[-1] == "null-ok" and "ermitted" in out


# ------------------------------------------------------------------ Control groups

def test_cgroups_path_and_a_memory_limit(both):
    """cgroupsPath and resources: the runtime MUST place the container in that group and
    apply the limits (read from inside, as a student would)."""
    results = {}
    for rt, bundle, cid in both.each(both.spec(["sh", "-c",
                                                "cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                                                "/sys/fs/cgroup/pids/pids.max; cat /proc/self/cgroup"
                                                " | grep memory"])):
        s = json.loads((bundle / "config.json").read_text())
        s["linux"]["cgroupsPath"] = f"/conformance/{cid}"
        s["linux"]["resources"].update(memory={"limit": 64 << 20}, pids={"limit": 42})
        (bundle / "config.json").write_text(json.dumps(s))
        r = rt("run", "--bundle", str(bundle), cid, cwd=bundle)
        rt("delete", "--force", cid)
        results[rt.name] = (r.code, r.out.replace(cid, "ID"))
    assert results["sandbox"][0] == 0
    assert results["sandbox"][1].splitlines()[:2] == [str(64 << 20), "42"]
    if "runc" in results:
        assert results["sandbox"] == results["runc"]
    _rmdir_parents("conformance")


def _block_device() -> str | None:
    """MAJOR:MINOR of a real disk of this host (not a loop or zram device), for I/O limits."""
    for name in sorted(os.listdir("/sys/block")):
        if not name.startswith(("loop", "zram", "ram")):
            return Path(f"/sys/block/{name}/dev").read_text().strip()
    return None


def test_resources_beyond_dockers_flags_as_runc_applies_them(both):
    """linux.resources blockIO and memory.swappiness/disableOOMKiller: applied as runc applies
    them (read back from inside), kernelTCP ignored as runc 1.1 ignores it, a per-device weight
    refused alike where the device's scheduler has none; cpu.burst and cpu.idle, which runc 1.1
    does not write on v1, land in ours."""
    from sandbox.cgroups import detect
    device = _block_device()
    if detect() != "v1" or device is None or not os.path.exists("/sys/fs/cgroup/blkio/sandbox/blkio.bfq.weight"):
        pytest.skip("needs cgroup v1 with BFQ weights and a block device")
    major, minor = (int(n) for n in device.split(":"))
    files = ["blkio/blkio.bfq.weight", "blkio/blkio.throttle.read_bps_device",
             "memory/memory.kmem.tcp.limit_in_bytes", "memory/memory.swappiness"]
    script = "; ".join(f"cat /sys/fs/cgroup/{f}" for f in files) + "; head -1 /sys/fs/cgroup/memory/memory.oom_control"

    def edit(s):
        s["linux"]["resources"].update(
            blockIO={"weight": 300, "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 10485760}]},
            memory={"limit": 64 << 20, "kernelTCP": 16 << 20, "swappiness": 10, "disableOOMKiller": True})
    results = probe(both, script, edit)
    code, out = same(results)
    assert code == 0, out
    assert out.split() == ["300", f"{device}", "10485760", "9223372036854771712", "10",
                           "oom_kill_disable", "1"], out

    def weight_device(s):
        s["linux"]["resources"]["blockIO"] = {"weightDevice": [{"major": major, "minor": minor, "weight": 400}]}
    scheduler = Path(f"/sys/dev/block/{device}/queue/scheduler").read_text()
    results = probe(both, "true", weight_device)
    if "[bfq]" not in scheduler:       # only BFQ has per-device weights: both refuse
        assert all(r.code != 0 and "weight_device" in r.err for r in results.values()), results

    spec = both.spec(["sh", "-c", "cat /sys/fs/cgroup/cpu/cpu.cfs_burst_us /sys/fs/cgroup/cpu/cpu.idle"])
    spec["linux"]["resources"]["cpu"] = {"burst": 1000, "idle": 1}
    r = both.run(spec)["sandbox"]
    assert (r.code, r.out.split()) == (0, ["1000", "1"]), r.out


def test_a_resource_the_kernel_lacks_is_refused_naming_the_field(both):
    """hugepageLimits where no hugetlb controller is mounted: refused with the field named, before
    anything runs (runc 1.1 skips an unmounted controller in silence)."""
    if os.path.isdir("/sys/fs/cgroup/hugetlb"):
        pytest.skip("this host has a hugetlb controller")
    spec = both.spec(["true"])
    spec["linux"]["resources"]["hugepageLimits"] = [{"pageSize": "2MB", "limit": 0}]
    r = both.run(spec)["sandbox"]
    assert r.code != 0 and "hugepageLimits" in r.err and "hugetlb" in r.err, r.err


def _rmdir_parents(name):
    """runc leaves the parent directories of a cgroupsPath behind; the leak check would see them."""
    base = "/sys/fs/cgroup"
    for hierarchy in os.listdir(base):
        path = os.path.join(base, hierarchy, name)
        if os.path.isdir(path):
            try:
                os.rmdir(path)
            except OSError:
                pass


# ------------------------------------------------------------------ sysctl, seccomp, paths

def test_sysctl(both):
    """linux.sysctl: the runtime MUST set them in the container's namespaces."""
    def edit(s):
        s["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"}
    assert same(probe(both, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni", edit)) == (
        0, "1\n1234\n")
    with open("/proc/sys/kernel/shmmni") as f:
        assert f.read().strip() != "1234"


def test_seccomp_errno_action(both):
    """linux.seccomp: the filter MUST be applied (mkdir denied with EPERM here)."""
    def edit(s):
        s["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                 "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                                               "errnoRet": 1}]}
        s["root"]["readonly"] = False
    code, out = same(probe(both, "mkdir /tmp/x 2>&1 | sed 's/.*: //'; echo done", edit))
    assert code == 0 and out == "Operation not permitted\ndone\n"


def test_masked_paths_read_empty(both):
    """maskedPaths: the runtime MUST make them inaccessible (empty) to the container."""
    code, out = same(probe(both, "wc -c < /proc/keys; ls /proc/acpi | wc -l"))
    assert code == 0 and out == "0\n0\n"


def test_readonly_paths(both):
    """readonlyPaths: MUST be read-only inside the container."""
    def edit(s):
        s["linux"]["sysctl"] = {}
    code, out = same(probe(both, "echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null || echo refused; "
                                 "echo 1 > /proc/sysrq-trigger 2>/dev/null || echo refused", edit))
    assert code == 0 and out == "refused\nrefused\n"


@pytest.mark.parametrize("propagation", ["private", "slave", "shared"])
def test_rootfs_propagation(both, propagation):
    """linux.rootfsPropagation: the root mount's propagation MUST be what it says."""
    def edit(s):
        s["linux"]["rootfsPropagation"] = propagation
    script = ("awk '$5 == \"/\" {t=\"\"; for (i = 7; $i != \"-\"; i++) t = t $i \" \"; print t}' "
              "/proc/self/mountinfo | sed 's/:[0-9]*//g'")
    results = probe(both, script, edit)
    # slave of a mount made private first (see rootfs.make_parent_private) is private: ""
    expected = {"private": "", "slave": "", "shared": "shared"}[propagation]
    assert (results["sandbox"].code, results["sandbox"].out.strip()) == (0, expected)
    if "runc" in results:                 # see KNOWN_DIFFERENCES for "shared"
        assert results["runc"].out.strip() == ("" if propagation == "shared" else expected)


def test_without_a_mount_namespace_the_root_is_still_the_containers(both):
    """No mount namespace listed: the container shares the runtime's, and its root is still
    root.path (runc chroots there); the mounts it made are ours to take away at delete."""
    spec = both.spec(["sh", "-c", "ls /; readlink /proc/self/ns/pid"])
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "mount"]
    spec["linux"].pop("maskedPaths", None)
    spec["linux"].pop("readonlyPaths", None)
    spec["mounts"] = [m for m in spec["mounts"] if m["destination"] in ("/proc", "/dev")]
    host_pid_ns = os.readlink("/proc/self/ns/pid")

    def mounts_below_rootfs():
        with open("/proc/self/mountinfo") as f:
            return [line.split()[4] for line in f if line.split()[4].startswith(str(both.rootfs))]

    for rt, bundle, cid in both.each(spec):
        r = rt("run", "--bundle", str(bundle), cid, cwd=bundle)
        rt("delete", "--force", cid)
        assert r.code == 0 and r.out.startswith("bin\n"), (rt.name, r)
        assert r.out.splitlines()[-1] != host_pid_ns
        left = mounts_below_rootfs()
        for point in sorted(left, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], check=False)
        if rt.name == "sandbox":
            assert left == []
        else:                             # see KNOWN_DIFFERENCES
            assert left
