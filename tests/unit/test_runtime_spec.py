"""sandbox.runtime.spec and seccomp_profile: Docker's defaults as config.json (no root needed).

The host's bounding set is a parameter; HOST_CAPS mimics the class VM, whose
engine runs without CAP_SYS_RESOURCE.  Seccomp rules are checked by reading
the generated filter back with ``syscall_action``, the way the kernel would
evaluate it, not by comparing JSON text.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from sandbox.errors import SandboxError, UsageError
from sandbox.runtime import seccomp_profile as sp
from sandbox.runtime import spec as rs
from sandbox.runtime.spec import ALL_CAPABILITIES, DEFAULT_CAPABILITIES, ContainerOptions

HOST_CAPS = frozenset(ALL_CAPABILITIES) - {"CAP_SYS_RESOURCE"}
NS_TYPES = {"pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"}


def make(warnings: list[str] | None = None, **kw: Any) -> dict[str, Any]:
    kw.setdefault("args", ["sh"])
    options = ContainerOptions(**kw)
    return rs.default_spec("/bundle/rootfs", options, host_bounding_set=HOST_CAPS,
                           arch="x86_64", kernel="6.18.0", host_device_list=[],
                           warnings=warnings)


# --------------------------------------------------------------------------
# A structural check after the runtime-spec's JSON schema (schema/config-schema.json,
# config-linux.json): required keys and their types.

def _is_uint(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _strings(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(s, str) for s in v)


def structure_errors(spec: dict[str, Any]) -> list[str]:
    errors: list[str] = []

    def need(cond: bool, what: str) -> None:
        if not cond:
            errors.append(what)

    need(spec.get("ociVersion") == "1.1.0", "ociVersion")
    root = spec.get("root", {})
    need(isinstance(root.get("path"), str) and isinstance(root.get("readonly", False), bool), "root")
    if "hostname" in spec:
        need(isinstance(spec["hostname"], str), "hostname")

    p = spec.get("process", {})
    need(isinstance(p.get("terminal", False), bool), "process.terminal")
    need(_is_uint(p.get("user", {}).get("uid")) and _is_uint(p["user"].get("gid")), "process.user")
    need(all(_is_uint(g) for g in p["user"].get("additionalGids", [])), "additionalGids")
    need(_strings(p.get("args")) and len(p["args"]) > 0, "process.args")
    need(_strings(p.get("env")) and all("=" in e for e in p["env"]), "process.env")
    need(isinstance(p.get("cwd"), str) and p["cwd"].startswith("/"), "process.cwd")
    caps = p.get("capabilities", {})
    for kind in ("bounding", "effective", "permitted", "inheritable", "ambient"):
        need(_strings(caps.get(kind)) and all(c.startswith("CAP_") for c in caps[kind]),
             f"capabilities.{kind}")
    for r in p.get("rlimits", []):
        need(r.get("type", "").startswith("RLIMIT_") and _is_uint(r.get("hard"))
             and _is_uint(r.get("soft")), "rlimit")
    need(isinstance(p.get("noNewPrivileges"), bool), "noNewPrivileges")
    need(isinstance(p.get("oomScoreAdj"), int), "oomScoreAdj")

    for m in spec.get("mounts", []):
        need(isinstance(m.get("destination"), str) and m["destination"].startswith("/")
             and isinstance(m.get("type"), str) and isinstance(m.get("source"), str)
             and _strings(m.get("options")), f"mount {m}")

    linux = spec.get("linux", {})
    types = [n.get("type") for n in linux.get("namespaces", [])]
    need(set(types) <= NS_TYPES and len(types) == len(set(types)), "namespaces")
    need(all(isinstance(n.get("path", ""), str) for n in linux["namespaces"]), "namespace path")
    for d in linux.get("devices", []):
        need(d.get("type") in ("c", "b", "u", "p") and isinstance(d.get("path"), str)
             and all(_is_uint(d.get(k)) for k in ("major", "minor", "fileMode", "uid", "gid")),
             f"device {d}")
    res = linux.get("resources", {})
    for rule in res.get("devices", []):
        need(isinstance(rule.get("allow"), bool) and rule.get("type", "a") in ("a", "b", "c")
             and all(_is_uint(rule.get(k, 0)) for k in ("major", "minor"))
             and set(rule.get("access", "rwm")) <= set("rwm"), f"device rule {rule}")
    for key in ("limit", "swap"):
        need(isinstance(res.get("memory", {}).get(key, 0), int), f"memory.{key}")
    cpu = res.get("cpu", {})
    need(all(_is_uint(cpu.get(k, 0)) for k in ("shares", "period"))
         and isinstance(cpu.get("quota", 0), int) and isinstance(cpu.get("cpus", ""), str), "cpu")
    need(isinstance(res.get("pids", {}).get("limit", 0), int), "pids")
    for key in ("maskedPaths", "readonlyPaths"):
        need(_strings(linux.get(key, [])), key)
    if "seccomp" in linux:
        sc = linux["seccomp"]
        need(sc.get("defaultAction") in sp.ACTIONS, "seccomp.defaultAction")
        need(_strings(sc.get("architectures", []))
             and all(a.startswith("SCMP_ARCH_") for a in sc.get("architectures", [])), "arches")
        for rule in sc.get("syscalls", []):
            need(_strings(rule.get("names")) and len(rule["names"]) > 0
                 and rule.get("action") in sp.ACTIONS
                 and _is_uint(rule.get("errnoRet", 0)), f"seccomp rule {rule.get('names')}")
            for a in rule.get("args", []):
                need(_is_uint(a.get("index")) and a["index"] <= 5 and _is_uint(a.get("value"))
                     and _is_uint(a.get("valueTwo", 0)) and a.get("op") in sp.OPERATORS,
                     f"seccomp arg {a}")
    json.dumps(spec)  # everything is plain JSON
    return errors


def test_default_spec_has_the_runtime_spec_structure() -> None:
    spec = make(hostname="3f2a9c", terminal=True, ulimits=[("nofile", 1024, 2048)],
                resources=rs.ResourceLimits(memory=64 << 20, cpu_shares=512, cpu_quota=50000,
                                            cpu_period=100000, cpuset_cpus="0", pids_limit=64))
    assert structure_errors(spec) == []
    assert spec["hostname"] == "3f2a9c"
    assert {"seccomp", "namespaces", "resources", "maskedPaths", "readonlyPaths"} <= set(spec["linux"])
    assert "apparmorProfile" not in spec["process"] and "selinuxLabel" not in spec["process"]


def test_structure_check_catches_mistakes() -> None:
    spec = make()
    spec["process"]["args"] = []
    spec["linux"]["namespaces"].append({"type": "pid"})
    assert {"process.args", "namespaces"} <= set(structure_errors(spec))


# --------------------------------------------------------------------------
# Capabilities

def test_capability_table_numbers() -> None:
    assert len(ALL_CAPABILITIES) == 41
    assert ALL_CAPABILITIES.index("CAP_SYS_ADMIN") == 21
    assert ALL_CAPABILITIES.index("CAP_SYS_RESOURCE") == 24
    assert ALL_CAPABILITIES.index("CAP_CHECKPOINT_RESTORE") == 40
    assert len(DEFAULT_CAPABILITIES) == 14 and set(DEFAULT_CAPABILITIES) < set(ALL_CAPABILITIES)


def test_fourteen_default_caps_for_root() -> None:
    caps = make()["process"]["capabilities"]
    for kind in ("bounding", "effective", "permitted"):
        assert caps[kind] == sorted(DEFAULT_CAPABILITIES)
    assert caps["inheritable"] == [] and caps["ambient"] == []


def test_non_root_user_keeps_only_the_bounding_set() -> None:
    spec = make(user="1000:1000", additional_gids=[27, 27, 4])
    caps = spec["process"]["capabilities"]
    assert caps["bounding"] == sorted(DEFAULT_CAPABILITIES)
    assert caps["effective"] == caps["permitted"] == caps["ambient"] == []
    assert spec["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [4, 27]}


def test_user_must_be_numeric() -> None:
    assert rs.parse_user("1000") == (1000, 0)
    with pytest.raises(UsageError, match="numeric"):
        make(user="nobody")


def test_cap_add_and_drop_accept_docker_names() -> None:
    caps = rs.capability_set(["net_admin", "CAP_SYS_PTRACE"], ["NET_RAW", "mknod"], False, None)
    assert "CAP_NET_ADMIN" in caps and "CAP_SYS_PTRACE" in caps
    assert "CAP_NET_RAW" not in caps and "CAP_MKNOD" not in caps
    assert len(caps) == 14 and caps == sorted(caps)


def test_all_semantics_follow_docker() -> None:
    everything = rs.capability_set(["ALL"], ["SYS_ADMIN"], False, HOST_CAPS)
    assert "CAP_SYS_ADMIN" not in everything and "CAP_BPF" in everything
    assert rs.capability_set(["CHOWN", "KILL"], ["all"], False, HOST_CAPS) == ["CAP_CHOWN", "CAP_KILL"]
    assert rs.capability_set([], ["ALL"], False, HOST_CAPS) == []


def test_cap_add_outside_host_bounding_set_is_clamped_with_a_warning() -> None:
    warnings: list[str] = []
    spec = make(warnings, cap_add=["SYS_RESOURCE", "NET_ADMIN"])
    caps = spec["process"]["capabilities"]["bounding"]
    assert "CAP_SYS_RESOURCE" not in caps and "CAP_NET_ADMIN" in caps
    assert len(warnings) == 1 and "CAP_SYS_RESOURCE" in warnings[0]


def test_privileged_gets_what_the_host_allows() -> None:
    warnings: list[str] = []
    caps = rs.capability_set([], [], True, HOST_CAPS, warnings=warnings)
    assert "CAP_SYS_RESOURCE" not in caps and len(caps) == 40 and warnings == []
    assert len(rs.capability_set([], [], True, None)) == 41
    # A bounding set as kernel.host_bounding_set() may give it: names without CAP_.
    assert "CAP_SYS_ADMIN" in rs.capability_set([], [], True, {"SYS_ADMIN", "chown"})


def test_unknown_capability_error_lists_the_valid_names() -> None:
    with pytest.raises(SandboxError) as info:
        rs.capability_set(["NET_ADMN"], [], False, None)
    message = str(info.value)
    assert "unknown capability" in message and "NET_ADMN" in message
    assert "NET_ADMIN" in message and "CHECKPOINT_RESTORE" in message


# --------------------------------------------------------------------------
# Privileged, read-only, namespaces

def test_privileged_spec() -> None:
    null = {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666,
            "uid": 0, "gid": 0}
    sda = {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0, "fileMode": 0o660,
           "uid": 0, "gid": 6}
    spec = rs.default_spec("/r", ContainerOptions(args=["sh"], privileged=True),
                           host_bounding_set=HOST_CAPS, arch="x86_64", kernel="6.18",
                           host_device_list=[null, sda])
    linux = spec["linux"]
    assert "seccomp" not in linux and "maskedPaths" not in linux and "readonlyPaths" not in linux
    assert sda in linux["devices"] and [d["path"] for d in linux["devices"]].count("/dev/null") == 1
    assert linux["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    mounts = {m["destination"]: m for m in spec["mounts"]}
    assert "rw" in mounts["/sys"]["options"] and "ro" not in mounts["/sys"]["options"]
    assert "rw" in mounts["/sys/fs/cgroup"]["options"]
    assert "CAP_SYS_RESOURCE" not in spec["process"]["capabilities"]["bounding"]
    assert structure_errors(spec) == []


def test_default_spec_is_not_privileged() -> None:
    spec = make()
    linux = spec["linux"]
    assert linux["maskedPaths"] == list(rs.MASKED_PATHS)
    assert "/proc/kcore" in linux["maskedPaths"] and "/proc/sys" in linux["readonlyPaths"]
    assert linux["resources"]["devices"][0] == {"allow": False, "access": "rwm"}
    assert [d["path"] for d in linux["devices"]] == [
        "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"]
    assert all(d["fileMode"] == 0o666 for d in linux["devices"])
    rules = linux["resources"]["devices"]
    assert {"allow": True, "type": "c", "major": 136, "access": "rwm"} in rules  # /dev/pts/*
    assert {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"} in rules  # ptmx
    mounts = {m["destination"]: m for m in spec["mounts"]}
    assert list(mounts) == ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup",
                            "/dev/mqueue", "/dev/shm"]
    assert "ro" in mounts["/sys"]["options"] and "ro" in mounts["/sys/fs/cgroup"]["options"]
    assert {"newinstance", "ptmxmode=0666", "mode=0620", "gid=5"} <= set(mounts["/dev/pts"]["options"])
    assert {"mode=1777", "size=65536k", "noexec"} <= set(mounts["/dev/shm"]["options"])
    assert {"mode=755", "size=65536k", "strictatime"} <= set(mounts["/dev"]["options"])


def test_read_only_rootfs() -> None:
    assert make()["root"]["readonly"] is False
    assert make(readonly_rootfs=True)["root"] == {"path": "/bundle/rootfs", "readonly": True}


def namespaces(spec: dict[str, Any]) -> dict[str, str | None]:
    return {n["type"]: n.get("path") for n in spec["linux"]["namespaces"]}


def test_private_namespaces_and_cgroupns_on_both_versions() -> None:
    assert set(namespaces(make())) == {"pid", "network", "ipc", "uts", "mount", "cgroup"}
    v1 = rs.default_spec("/r", ContainerOptions(args=["sh"]), cgroup_version="v1",
                         arch="x86_64", kernel="6.18")
    assert "cgroup" in namespaces(v1)
    assert {m["destination"]: m["type"] for m in v1["mounts"]}["/sys/fs/cgroup"] == "cgroup"
    assert "cgroup" in namespaces(make(cgroupns="private"))
    assert "cgroup" not in namespaces(make(cgroupns="host"))


def test_host_namespaces() -> None:
    spec = make(host_namespaces={"pid", "network", "ipc", "uts"}, hostname="box")
    assert set(namespaces(spec)) == {"mount", "cgroup"}
    assert "hostname" not in spec  # runc refuses a hostname without a private UTS namespace
    mounts = {m["destination"]: m for m in spec["mounts"]}
    assert mounts["/dev/shm"]["source"] == "/dev/shm" and mounts["/dev/shm"]["type"] == "bind"
    with pytest.raises(UsageError, match="mnt"):
        make(host_namespaces={"mnt"})


def test_network_namespace_path() -> None:
    spec = make(netns_path="/run/sandbox/netns/3f2a", namespace_paths={"ipc": "/proc/7/ns/ipc"})
    assert namespaces(spec)["network"] == "/run/sandbox/netns/3f2a"
    assert namespaces(spec)["ipc"] == "/proc/7/ns/ipc"
    with pytest.raises(UsageError):
        make(netns_path="/run/x", host_namespaces={"network"})


def test_rootless_user_namespace() -> None:
    spec = make(rootless=True, uid_mappings=[(0, 1000, 1)], gid_mappings=[(0, 1000, 1)])
    assert spec["linux"]["namespaces"][0] == {"type": "user"}
    assert spec["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 1000, "size": 1}]
    pts = next(m for m in spec["mounts"] if m["destination"] == "/dev/pts")
    assert "gid=5" not in pts["options"]  # gid 5 is not mapped
    mapped = make(rootless=True, uid_mappings=[(0, 100000, 65536)],
                  gid_mappings=[(0, 100000, 65536)])
    assert "gid=5" in next(m for m in mapped["mounts"] if m["destination"] == "/dev/pts")["options"]
    with pytest.raises(UsageError, match="mappings"):
        make(rootless=True)


# --------------------------------------------------------------------------
# Process, mounts, resources

def test_environment_defaults() -> None:
    env = make(hostname="web", terminal=True, env=["FOO=1", "PATH=/bin"])["process"]["env"]
    assert env == ["PATH=/bin", "HOSTNAME=web", "TERM=xterm", "FOO=1"]
    assert "TERM=xterm" not in make()["process"]["env"]
    assert make(env={"A": "b"})["process"]["env"][-1] == "A=b"


def test_init_and_args() -> None:
    spec = make(args=["python", "-m", "http.server"], init=True)
    assert spec["process"]["args"] == ["/sbin/docker-init", "--", "python", "-m", "http.server"]
    init = next(m for m in spec["mounts"] if m["destination"] == "/sbin/docker-init")
    assert init["source"] == rs.DEFAULT_INIT_BINARY and "ro" in init["options"]
    with pytest.raises(UsageError, match="no command"):
        make(args=[])


def test_user_mounts_and_tmpfs() -> None:
    spec = make(mounts=[{"destination": "/data", "type": "bind", "source": "/srv/data",
                         "options": ["ro"]},
                        {"destination": "/dev/shm", "type": "tmpfs", "source": "tmpfs",
                         "options": ["size=1g"]}],
                tmpfs={"/run": "exec,size=10m"})
    mounts = {m["destination"]: m for m in spec["mounts"]}
    assert mounts["/data"]["options"] == ["rbind", "ro"]
    assert mounts["/dev/shm"]["options"] == ["size=1g"]  # the user's replaces Docker's
    assert [m["destination"] for m in spec["mounts"]].count("/dev/shm") == 1
    assert mounts["/run"]["options"] == ["nosuid", "nodev", "rw", "exec", "size=10m"]
    with pytest.raises(UsageError, match="duplicate"):
        make(tmpfs={"/run": ""}, mounts=[{"destination": "/run", "source": "/x"}])


def test_resources_and_annotations() -> None:
    spec = make(resources=rs.ResourceLimits(memory=64 << 20, cpu_quota=50000, pids_limit=10),
                cgroups_path="/sandbox/3f2a", stop_signal="SIGINT", annotations={"a": "b"},
                sysctls={"net.ipv4.ip_forward": "1"})
    res = spec["linux"]["resources"]
    assert res["memory"] == {"limit": 64 << 20, "swap": 128 << 20}  # docker: swap = 2 x memory
    assert res["cpu"] == {"quota": 50000} and res["pids"] == {"limit": 10}
    assert spec["linux"]["cgroupsPath"] == "/sandbox/3f2a"
    assert spec["linux"]["sysctl"] == {"net.ipv4.ip_forward": "1"}
    assert spec["annotations"] == {"a": "b", "org.opencontainers.image.stopSignal": "SIGINT"}
    with pytest.raises(UsageError, match="memory-swap"):
        make(resources=rs.ResourceLimits(memory=64 << 20, memory_swap=32 << 20))


def test_sysctls_that_would_change_the_host_are_refused() -> None:
    with pytest.raises(UsageError, match="not namespaced"):
        make(sysctls={"kernel.panic": "1"})
    with pytest.raises(UsageError, match="network"):
        make(sysctls={"net.ipv4.ip_forward": "1"}, host_namespaces={"network"})


# --------------------------------------------------------------------------
# Devices

@pytest.mark.parametrize("text, expected", [
    ("/dev/fuse", ("/dev/fuse", "/dev/fuse", "rwm")),
    ("/dev/fuse:r", ("/dev/fuse", "/dev/fuse", "r")),
    ("/dev/sda:/dev/xvda", ("/dev/sda", "/dev/xvda", "rwm")),
    ("/dev/sda:/dev/xvda:rw", ("/dev/sda", "/dev/xvda", "rw")),
])
def test_parse_device(text: str, expected: tuple[str, str, str]) -> None:
    parsed = rs.parse_device(text)
    assert (parsed["PathOnHost"], parsed["PathInContainer"], parsed["CgroupPermissions"]) == expected


@pytest.mark.parametrize("text", ["", "/a:/b:rw:x", "/dev/sda:/dev/xvda:rwx", "/dev/sda:/b:rr",
                                  "dev/sda", "/dev/sda:xvda"])
def test_parse_device_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        rs.parse_device(text)


def test_device_in_spec(tmp_path: Any) -> None:
    spec = make(devices=["/dev/null:/dev/mynull:r"])
    assert {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3}.items() <= \
        next(d for d in spec["linux"]["devices"] if d["path"] == "/dev/mynull").items()
    assert spec["linux"]["resources"]["devices"][-1] == \
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"}
    with pytest.raises(UsageError, match="error gathering device"):
        make(devices=[str(tmp_path / "missing")])
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a device"):
        make(devices=[str(tmp_path / "file")])


# --------------------------------------------------------------------------
# rlimits

def test_rlimit_clamped_to_the_host_hard_limit_with_a_warning() -> None:
    limits, warnings = rs.rlimits([("nofile", 1024, 1048576), ("RLIMIT_CORE", -1, -1)],
                                  {"nofile": 20000})
    assert limits[0] == {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 20000}
    assert limits[1] == {"type": "RLIMIT_CORE", "soft": rs.RLIM_INFINITY, "hard": rs.RLIM_INFINITY}
    assert len(warnings) == 1 and "nofile" in warnings[0] and "20000" in warnings[0]
    assert rs.rlimits([("nofile", 1024, 2048)], {"RLIMIT_NOFILE": 20000}) == (
        [{"type": "RLIMIT_NOFILE", "hard": 2048, "soft": 1024}], [])


def test_rlimit_errors() -> None:
    with pytest.raises(UsageError, match="soft limit"):
        rs.rlimits([("nofile", 4096, 1024)])
    with pytest.raises(UsageError, match="unknown ulimit"):
        rs.rlimits([("files", 1, 1)])


def test_daemon_default_ulimits_are_overridden_per_name() -> None:
    warnings: list[str] = []
    spec = rs.default_spec("/r", ContainerOptions(args=["sh"], ulimits=[("nofile", 10, 20)]),
                           arch="x86_64", kernel="6.18", warnings=warnings,
                           default_ulimits=[("nofile", 1024, 1024), ("nproc", 100, 100000)],
                           hard_limits={"nproc": 5000})
    got = {r["type"]: (r["soft"], r["hard"]) for r in spec["process"]["rlimits"]}
    assert got == {"RLIMIT_NOFILE": (10, 20), "RLIMIT_NPROC": (100, 5000)}
    assert len(warnings) == 1 and "nproc" in warnings[0]


# --------------------------------------------------------------------------
# seccomp

DEFAULT_FILTER = sp.default_profile(DEFAULT_CAPABILITIES, "x86_64", kernel="6.18.0")


def test_default_filter_shape() -> None:
    assert DEFAULT_FILTER["defaultAction"] == "SCMP_ACT_ERRNO"
    assert DEFAULT_FILTER["defaultErrnoRet"] == sp.ERRNO_EPERM
    assert DEFAULT_FILTER["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    arm = sp.default_profile([], "aarch64", kernel="6.1")
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert sp.is_allowed(arm, "cacheflush") and not sp.is_allowed(arm, "arch_prctl")
    assert make()["linux"]["seccomp"] == DEFAULT_FILTER
    assert "seccomp" not in make(seccomp="unconfined")["linux"]


@pytest.mark.parametrize("name", ["read", "write", "openat", "mmap", "execve", "futex", "epoll_wait",
                                  "socketpair", "chroot", "arch_prctl", "rseq", "getrandom",
                                  "ptrace", "adjtimex", "statx", "close_range"])
def test_normal_programs_work(name: str) -> None:
    assert sp.is_allowed(DEFAULT_FILTER, name)


@pytest.mark.parametrize("name, cap", [
    ("mount", "CAP_SYS_ADMIN"), ("umount2", "CAP_SYS_ADMIN"), ("unshare", "CAP_SYS_ADMIN"),
    ("setns", "CAP_SYS_ADMIN"), ("pivot_root", "CAP_SYS_ADMIN"), ("fsopen", "CAP_SYS_ADMIN"),
    ("bpf", "CAP_BPF"), ("bpf", "CAP_SYS_ADMIN"), ("perf_event_open", "CAP_PERFMON"),
    ("init_module", "CAP_SYS_MODULE"), ("finit_module", "CAP_SYS_MODULE"),
    ("reboot", "CAP_SYS_BOOT"), ("acct", "CAP_SYS_PACCT"), ("iopl", "CAP_SYS_RAWIO"),
    ("settimeofday", "CAP_SYS_TIME"), ("clock_settime", "CAP_SYS_TIME"),
    ("kcmp", "CAP_SYS_PTRACE"), ("mbind", "CAP_SYS_NICE"), ("syslog", "CAP_SYSLOG"),
    ("open_by_handle_at", "CAP_DAC_READ_SEARCH"), ("quotactl", "CAP_SYS_ADMIN"),
])
def test_denied_by_default_allowed_with_the_capability(name: str, cap: str) -> None:
    assert sp.syscall_action(DEFAULT_FILTER, name) == ("SCMP_ACT_ERRNO", sp.ERRNO_EPERM)
    granted = sp.default_profile([*DEFAULT_CAPABILITIES, cap], "x86_64", kernel="6.18")
    assert sp.is_allowed(granted, name)


@pytest.mark.parametrize("name", ["keyctl", "add_key", "request_key", "kexec_load",
                                  "kexec_file_load", "swapon", "userfaultfd", "io_uring_setup",
                                  "lookup_dcookie", "uselib"])
def test_denied_by_default(name: str) -> None:
    assert not sp.is_allowed(DEFAULT_FILTER, name)


def test_never_allowed_even_with_every_capability() -> None:
    everything = sp.default_profile(ALL_CAPABILITIES, "x86_64", kernel="6.18")
    for name in sp.NEVER_ALLOWED:
        assert not sp.is_allowed(everything, name), name
    assert not set(sp.NEVER_ALLOWED) & sp.ALLOWED_SYSCALLS
    gated = {n for names in sp.CAPABILITY_SYSCALLS.values() for n in names} - {"ptrace",
                                                                              "process_vm_readv",
                                                                              "process_vm_writev"}
    assert not gated & sp.ALLOWED_SYSCALLS


def test_mount_allowed_in_spec_with_cap_add_sys_admin() -> None:
    filt = make(cap_add=["SYS_ADMIN"])["linux"]["seccomp"]
    assert sp.is_allowed(filt, "mount") and sp.is_allowed(filt, "unshare")
    assert sp.is_allowed(filt, "clone", [sp.CLONE_NEWUSER])
    assert not sp.is_allowed(filt, "keyctl")


def test_clone_rule_masks_namespace_flags() -> None:
    rules = [r for r in DEFAULT_FILTER["syscalls"] if "clone" in r["names"]]
    assert rules == [{"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": sp.CLONE_NAMESPACE_FLAGS, "valueTwo": 0,
                                "op": "SCMP_CMP_MASKED_EQ"}]}]
    assert sp.CLONE_NAMESPACE_FLAGS == 0x7E020000
    thread_flags = 0x003D0F00  # what glibc's pthread_create passes
    assert sp.is_allowed(DEFAULT_FILTER, "clone", [thread_flags])
    for flag in (sp.CLONE_NEWNS, sp.CLONE_NEWUSER, sp.CLONE_NEWPID, sp.CLONE_NEWNET,
                 sp.CLONE_NEWUTS, sp.CLONE_NEWIPC, sp.CLONE_NEWCGROUP):
        assert not sp.is_allowed(DEFAULT_FILTER, "clone", [thread_flags | flag])


def test_clone3_pretends_not_to_exist() -> None:
    assert sp.syscall_action(DEFAULT_FILTER, "clone3") == ("SCMP_ACT_ERRNO", sp.ERRNO_ENOSYS)
    rule = next(r for r in DEFAULT_FILTER["syscalls"] if r["names"] == ["clone3"])
    assert rule == {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}


def test_personality_rules() -> None:
    rules = [r for r in DEFAULT_FILTER["syscalls"] if r["names"] == ["personality"]]
    assert sorted(r["args"][0]["value"] for r in rules) == [0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF]
    assert all(r["args"][0]["op"] == "SCMP_CMP_EQ" and r["args"][0]["index"] == 0 for r in rules)
    assert sp.is_allowed(DEFAULT_FILTER, "personality", [0xFFFFFFFF])
    assert not sp.is_allowed(DEFAULT_FILTER, "personality", [0x0040000])  # ADDR_NO_RANDOMIZE


def test_socket_and_ptrace_rules() -> None:
    assert sp.is_allowed(DEFAULT_FILTER, "socket", [2])  # AF_INET
    assert not sp.is_allowed(DEFAULT_FILTER, "socket", [sp.AF_VSOCK])
    old = sp.default_profile(DEFAULT_CAPABILITIES, "x86_64", kernel="4.4.0-210-generic")
    assert not sp.is_allowed(old, "ptrace")


# --------------------------------------------------------------------------
# Docker-format profiles (--security-opt seccomp=FILE)

DOCKER_SAMPLE = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 1,
    "archMap": [
        {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
    ],
    "syscalls": [
        {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
        {"name": "getpid", "action": "SCMP_ACT_ALLOW", "comment": "legacy single name"},
        {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
        {"names": ["cacheflush"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
        {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]},
         "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
         "excludes": {"arches": ["arm64"]}},
    ],
}


def test_from_docker_profile_without_capabilities() -> None:
    out = sp.from_docker_profile(DOCKER_SAMPLE, ["CAP_CHOWN"], "x86_64", kernel="6.18")
    assert out["defaultAction"] == "SCMP_ACT_ERRNO" and out["defaultErrnoRet"] == 1
    assert out["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]
    assert [r["names"] for r in out["syscalls"]] == [
        ["read", "write", "exit_group"], ["getpid"], ["arch_prctl"], ["ptrace"], ["clone"], ["chmod"]]
    clone = out["syscalls"][4]
    assert clone["args"] == [{"index": 0, "value": 2114060288, "valueTwo": 0,
                              "op": "SCMP_CMP_MASKED_EQ"}]
    assert sp.syscall_action(out, "chmod") == ("SCMP_ACT_ERRNO", 13)
    assert not sp.is_allowed(out, "mount")
    assert all("comment" not in r and "includes" not in r for r in out["syscalls"])


def test_from_docker_profile_with_caps_arch_and_old_kernel() -> None:
    out = sp.from_docker_profile(DOCKER_SAMPLE, ["SYS_ADMIN"], "aarch64", kernel="4.4.0")
    names = [n for r in out["syscalls"] for n in r["names"]]
    assert "mount" in names and "cacheflush" in names
    assert "clone" not in names  # excluded: the container holds CAP_SYS_ADMIN
    assert "arch_prctl" not in names and "chmod" not in names and "ptrace" not in names
    assert out["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]


def test_docker_profile_in_spec_and_with_privileged() -> None:
    spec = make(seccomp=DOCKER_SAMPLE)
    assert sp.is_allowed(spec["linux"]["seccomp"], "getpid")
    assert "seccomp" in make(seccomp=DOCKER_SAMPLE, privileged=True)["linux"]
    legacy = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
              "syscalls": [{"names": ["keyctl"], "action": "SCMP_ACT_ERRNO"}]}
    out = sp.from_docker_profile(legacy, [], "x86_64")
    assert out["architectures"] == ["SCMP_ARCH_X86_64"] and not sp.is_allowed(out, "keyctl")


@pytest.mark.parametrize("profile, message", [
    ({"syscalls": []}, "defaultAction"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
      "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}, "either"),
    ({"defaultAction": "SCMP_ACT_ERRNO",
      "syscalls": [{"name": "read", "names": ["write"], "action": "SCMP_ACT_ALLOW"}]}, "either"),
    ({"defaultAction": "SCMP_ACT_ERRNO",
      "syscalls": [{"names": ["read"], "action": "ALLOW"}]}, "unknown action"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_FOO"}]}]}, "operator"),
])
def test_bad_docker_profiles(profile: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        sp.from_docker_profile(profile, [], "x86_64")


def test_docker_default_profile_round_trips_through_json() -> None:
    profile = json.loads(json.dumps(sp.docker_default_profile()))
    assert sp.from_docker_profile(profile, DEFAULT_CAPABILITIES, "x86_64", kernel="6.18.0") \
        == DEFAULT_FILTER
