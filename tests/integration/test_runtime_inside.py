"""What a process sees inside a container with Docker's defaults.

Each test runs busybox commands through ``python -m sandbox.runtime run`` and
checks the kernel's own reports (/proc/self/status, ns links, errno) against
what Docker gives: the 14 capabilities, seccomp filter mode, six namespaces,
a minimal /dev, masked and read-only paths.
"""

from __future__ import annotations

import os
import shutil

import pytest

from sandbox import kernel
from sandbox.runtime.spec import DEFAULT_CAPABILITIES
from tests.conftest import requires_root
from tests.integration.runtime_env import (bundles, busybox_rootfs, probe_binary,  # noqa: F401
                                           runtime)

pytestmark = requires_root

DEFAULT_CAPS_MASK = "00000000a80425fb"   # Docker's 14 capabilities
DEV_ENTRIES = ["fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr",
               "stdin", "stdout", "tty", "urandom", "zero"]


def fields(out: str) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)


def test_pid_one_namespaces_and_hostname(bundles):
    code, out = bundles.run(["sh", "-c", "echo self=$$; hostname; "
                             "for n in mnt uts ipc pid net cgroup; do echo $n=$(stat -L -c %i /proc/self/ns/$n); done"],
                            hostname="inside")
    assert code == 0, out
    values = dict(line.split("=", 1) for line in out.split() if "=" in line)
    assert values["self"] == "1"
    assert "inside" in out.split()
    for ns in ("mnt", "uts", "ipc", "pid", "net", "cgroup"):
        host = os.stat(f"/proc/self/ns/{ns}").st_ino
        assert int(values[ns]) != host, f"{ns} namespace is the host's"


@pytest.mark.skipif(not set(DEFAULT_CAPABILITIES) <= kernel.host_bounding_set(),
                    reason="this host's bounding set lacks some of Docker's 14 capabilities")
def test_capabilities_and_seccomp_mode(bundles):
    code, out = bundles.run(["cat", "/proc/self/status"])
    assert code == 0, out
    status = fields(out)
    assert status["CapEff"] == status["CapBnd"] == status["CapPrm"] == DEFAULT_CAPS_MASK
    assert status["CapInh"] == status["CapAmb"] == "0000000000000000"
    assert status["Seccomp"].strip() == "2"
    assert status["NoNewPrivs"].strip() == "0"


def test_unshare_user_is_refused_by_seccomp(bundles):
    # Creating a user namespace needs no capability: only the filter can refuse it.
    code, out = bundles.run(["unshare", "-U", "true"])
    assert code != 0
    assert "Operation not permitted" in out


def test_static_probe_keyctl_clone3_fork_threads(bundles, probe_binary, tmp_path, busybox_rootfs):
    rootfs = tmp_path / "probe-rootfs"
    shutil.copytree(busybox_rootfs, rootfs, symlinks=True)
    shutil.copy(probe_binary, rootfs / "probe")
    code, out = bundles.run(["/probe"], rootfs=rootfs)
    assert code == 0, out
    assert out.split("\n")[:4] == ["keyctl EPERM", "clone3 ENOSYS", "fork ok", "thread ok"]


def test_mount_needs_the_capability_and_the_filter_open(bundles):
    def capability_only(spec):
        for kind in ("bounding", "effective", "permitted"):
            spec["process"]["capabilities"][kind].append("CAP_SYS_ADMIN")

    mount = ["mount", "-t", "tmpfs", "none", "/tmp"]
    assert bundles.run(mount)[0] != 0
    code, out = bundles.run(mount, edit=capability_only)       # the default filter keeps refusing
    assert code != 0 and "permission denied" in out.lower()
    code, out = bundles.run(mount, cap_add=["SYS_ADMIN"], seccomp="unconfined")
    assert code == 0, out


def test_masked_paths_read_empty_and_refuse_writes(bundles):
    script = ("for f in /proc/timer_list /proc/keys; do [ -e $f ] || continue; "
              "echo $f $(wc -c < $f); echo x > $f || echo refused $f; done; "
              "ls /sys/firmware | wc -l; touch /sys/firmware/x || echo refused dir")
    code, out = bundles.run(["sh", "-c", script])
    lines = out.splitlines()
    for path in ("/proc/timer_list", "/proc/keys"):
        if os.path.exists(path):
            assert f"{path} 0" in lines
            assert f"refused {path}" in lines
    assert "refused dir" in lines
    assert "Read-only file system" in out


def test_proc_sys_and_cgroup_fs_are_read_only(bundles):
    code, out = bundles.run(["sh", "-c", "echo x > /proc/sys/kernel/hostname; echo rc=$?; "
                             "mkdir /sys/fs/cgroup/escape; echo rc=$?; ls /sys/fs/cgroup | wc -l"])
    assert out.count("Read-only file system") == 2, out
    assert "rc=0" not in out


def test_dev_holds_exactly_the_defaults(bundles):
    code, out = bundles.run(["ls", "/dev"])
    assert code == 0, out
    expected = sorted(DEV_ENTRIES + (["core"] if os.path.exists("/proc/kcore") else []))
    assert out.split() == expected
    code, out = bundles.run(["sh", "-c", "readlink /dev/ptmx; readlink /dev/fd; stat -c '%t:%T %a' /dev/null"])
    assert out.split() == ["pts/ptmx", "/proc/self/fd", "1:3", "666"]


def test_loopback_is_up_in_the_new_network_namespace(bundles):
    code, out = bundles.run(["sh", "-c", "ip link show lo; ip link | grep -c mtu"])
    assert code == 0, out
    assert "UP" in out.split("\n")[0] and out.split()[-1] == "1"


def test_non_root_user_has_no_effective_capabilities(bundles):
    code, out = bundles.run(["sh", "-c", "id -u; id -G; grep CapEff /proc/self/status"],
                            user="1000:1000", additional_gids=[27])
    assert code == 0, out
    lines = out.split("\n")
    assert lines[0] == "1000"
    assert set(lines[1].split()) == {"1000", "27"}
    assert lines[2].split()[1] == "0000000000000000"


def test_read_only_bind_mount_and_rootfs(bundles, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "hello").write_text("from the host\n")
    code, out = bundles.run(
        ["sh", "-c", "cat /data/hello; touch /data/x; echo rc=$?; touch /new; echo rc=$?"],
        mounts=[{"destination": "/data", "type": "bind", "source": str(shared), "options": ["ro"]}],
        readonly_rootfs=True)
    assert "from the host" in out
    assert out.count("Read-only file system") == 2 and "rc=0" not in out
    assert sorted(os.listdir(shared)) == ["hello"]


def test_rlimit_above_the_hard_limit_is_clamped_with_a_warning(bundles):
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("the host's RLIMIT_NOFILE hard limit is unlimited")
    code, out = bundles.run(["sh", "-c", "ulimit -n; ulimit -H -n"], ulimits=[("nofile", hard, hard * 4)])
    if "CAP_SYS_RESOURCE" in kernel.host_bounding_set():
        assert code == 0 and out.split()[-1] == str(hard * 4)
    else:
        assert code == 0, out
        assert "clamped" in out
        assert out.split()[:2] == [str(hard), str(hard)]


def test_sysctl_in_the_container_only(bundles):
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        host = f.read().strip()
    code, out = bundles.run(["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"],
                            sysctls={"net.ipv4.ip_unprivileged_port_start": "80"})
    assert code == 0 and out.strip() == "80"
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        assert f.read().strip() == host


def test_privileged_gets_the_host_bounding_set_and_no_filter(bundles):
    code, out = bundles.run(["sh", "-c", "grep -E 'CapEff|Seccomp:' /proc/self/status; "
                             "cat /proc/timer_list | wc -c"], privileged=True)
    assert code == 0, out
    status = fields(out)
    assert int(status["CapEff"], 16) == kernel.caps_to_mask(kernel.host_bounding_set())
    assert status["Seccomp"].strip() == "0"
