"""config.json checks: each bad field is named, before anything is made (no root needed)."""

from __future__ import annotations

import json

import pytest

from sandbox.errors import InvalidSpec
from sandbox.runtime import config
from sandbox.runtime.spec import ContainerOptions, default_spec


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs").mkdir()
    return tmp_path


def good() -> dict:
    return default_spec("rootfs", ContainerOptions(args=["sh"]), host_bounding_set=None,
                        cgroup_version="v1", arch="x86_64", kernel="6.18")


def check(spec, bundle):
    return config.check(spec, str(bundle))


def test_default_spec_passes_and_root_becomes_absolute(bundle):
    spec = check(good(), bundle)
    assert spec["root"]["path"] == str(bundle / "rootfs")


@pytest.mark.parametrize("edit, field, words", [
    (lambda s: s.pop("ociVersion"), "ociVersion", "required"),
    (lambda s: s.__setitem__("ociVersion", "0.9"), "ociVersion", "1.x"),
    (lambda s: s["process"].__setitem__("args", []), "process.args", "command"),
    (lambda s: s["process"].__setitem__("args", ["sh", 3]), "process.args[1]", "string"),
    (lambda s: s["process"].__setitem__("cwd", "tmp"), "process.cwd", "absolute"),
    (lambda s: s["process"]["user"].__setitem__("uid", -1), "process.user.uid", "negative"),
    (lambda s: s["process"]["user"].__setitem__("gid", "0"), "process.user.gid", "integer"),
    (lambda s: s["process"].__setitem__("rlimits", [{"type": "RLIMIT_NOFILE", "soft": 9, "hard": 1}]),
     "process.rlimits[0]", "above the hard"),
    (lambda s: s["mounts"].append({"destination": "data", "type": "tmpfs"}),
     "mounts[7].destination", "absolute"),
    (lambda s: s["mounts"].append({"destination": "/d", "type": "bind", "source": "/no/such"}),
     "mounts[7].source", "does not exist"),
    (lambda s: s["linux"]["namespaces"].append({"type": "pid"}), "linux.namespaces[6].type", "twice"),
    (lambda s: s["linux"]["namespaces"].append({"type": "vm"}), "linux.namespaces[6].type", "unknown"),
    (lambda s: s["linux"]["seccomp"].__setitem__("defaultAction", "SCMP_ACT_SMILE"),
     "linux.seccomp.defaultAction", "unknown seccomp action"),
    (lambda s: s["linux"]["seccomp"]["syscalls"][2]["names"].append("mkdri"),
     "linux.seccomp.syscalls[2].names", "unknown system call"),
    (lambda s: s["linux"]["devices"].append({"path": "/etc/passwd", "type": "c", "major": 1, "minor": 3}),
     "linux.devices[6].path", "below /dev"),
    (lambda s: s.__setitem__("hooks", {"startContainer": [{"path": "/bin/true"}]}),
     "hooks.startContainer", "not supported"),
    (lambda s: s["linux"].__setitem__("rootfsPropagation", "sideways"),
     "linux.rootfsPropagation", "unknown"),
])
def test_bad_field_is_named(bundle, edit, field, words):
    spec = good()
    edit(spec)
    with pytest.raises(InvalidSpec) as info:
        check(spec, bundle)
    assert info.value.field.startswith(field)
    assert words in str(info.value)


def test_recent_syscall_names_are_accepted(bundle):
    spec = good()
    spec["linux"]["seccomp"]["syscalls"][0]["names"].append("mseal")
    check(spec, bundle)


def test_load_reports_missing_and_broken_files(bundle):
    with pytest.raises(InvalidSpec, match="no config.json"):
        config.load(str(bundle))
    (bundle / "config.json").write_text("{")
    with pytest.raises(InvalidSpec, match="not valid JSON"):
        config.load(str(bundle))
    (bundle / "config.json").write_text(json.dumps(good()))
    assert config.load(str(bundle))["process"]["args"] == ["sh"]


def test_namespace_flags_split_new_and_joined():
    from sandbox import kernel
    spec = {"linux": {"namespaces": [{"type": "pid"}, {"type": "network", "path": "/x"}]}}
    flags, joins = config.namespace_flags(spec)
    assert flags == kernel.CLONE_NEWPID and joins == {"network": "/x"}


def test_an_unknown_capability_is_a_warning_naming_the_field():
    from sandbox.runtime.config import drop_unknown_capabilities
    process = {"capabilities": {"bounding": ["CAP_KILL", "CAP_FLY"], "effective": ["CAP_KILL"]}}
    warnings = drop_unknown_capabilities(process)
    assert len(warnings) == 1 and warnings[0].startswith("process.capabilities.bounding[1]: unknown")
    assert process["capabilities"]["bounding"] == ["CAP_KILL"]
