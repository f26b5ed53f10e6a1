"""Shared test plumbing: skip markers, a fresh store per test, leak checks.

Tests import the markers with ``from tests.conftest import requires_root,
requires_tool``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
import subprocess

import pytest

from tests import leaks

# Which Debian package provides a tool, for skip reasons that say the fix.
APT_PACKAGE = {
    "busybox": "busybox-static",
    "skopeo": "skopeo",
    "umoci": "umoci",
    "oci-image-tool": "oci-image-tool",
    "docker-registry": "docker-registry",
    "registry": "docker-registry",
    "debootstrap": "debootstrap",
    "zstd": "zstd",
    "runc": "runc",
    "htpasswd": "apache2-utils",
    "tini": "tini",
    "tini-static": "tini",
    "newuidmap": "uidmap",
    "newgidmap": "uidmap",
    "ip": "iproute2",
    "bridge": "iproute2",
}

requires_root = pytest.mark.skipif(os.geteuid() != 0, reason="requires root")


def _container_mode() -> str:
    """'' when containers can run here with isolation (root, or rootless in a user namespace), else why not."""
    if os.geteuid() == 0:
        return ""
    from sandbox.hostinfo import mode
    found = mode()
    return "" if found.name == "rootless" else f"containers need root or user namespaces: {found.reason}"


#: Containers in namespaces: as root, or as a user in rootless mode (the rootless tier runs
#: the container and build tests as a user made for it: tools/rootless_tier.py).
requires_containers = pytest.mark.skipif(bool(_container_mode()), reason=_container_mode() or "-")


def rootless_mode() -> bool:
    """Is this a rootless run?  (A user; or, once the session joined, "root" in the user's namespace.)"""
    from sandbox import rootless
    return os.geteuid() != 0 or rootless.inside()


def requires_root_for(what: str) -> pytest.MarkDecorator:
    """Skip in rootless mode, saying which root-only part the test needs (and what rootless does instead)."""
    return pytest.mark.skipif(rootless_mode(), reason=f"rootless mode: {what}")


def cgroup_controller_missing(*names: str) -> str:
    """'' when the cgroup layout the engine sees here has every controller named, else why not.

    v1: each needs a v1 mount; v2 (also the cgroup2 tier, tools/cgroup2_tier.py):
    each must be in the unified root's cgroup.controllers.
    """
    from sandbox.cgroups import detect
    from sandbox.cgroups.fs import read_mountinfo
    if rootless_mode():
        return _delegation_missing(*names)
    mounts = read_mountinfo()
    if detect() == "v2":
        root = next((m.mount_point for m in mounts if m.fstype == "cgroup2"), None)
        have = set(open(f"{root}/cgroup.controllers").read().split()) if root else set()
        v1 = {"cpuacct": "cpu", "blkio": "io"}
        missing = [n for n in names if n != "freezer" and v1.get(n, n) not in have]  # v2: cgroup.freeze is core
        return f"the cgroup v2 hierarchy here lacks {', '.join(missing)}" if missing else ""
    have = {o for m in mounts if m.fstype == "cgroup" for o in m.super_options}
    missing = [n for n in names if n not in have]
    return f"no cgroup v1 hierarchy here holds {', '.join(missing)}" if missing else ""


def _delegation_missing(*names: str) -> str:
    """As a user: '' when the cgroup v2 group this process is in is delegated to it with the controllers
    (the engine's own test, sandbox.cgroups.delegated, so a test skips exactly where the engine gives up)."""
    from sandbox.cgroups import delegated
    own = delegated()
    if not own.available:
        return f"rootless mode: {own.reason}"
    have = set(own.controllers())
    v1 = {"cpuacct": "cpu", "blkio": "io"}
    missing = [n for n in names if n != "freezer" and v1.get(n, n) not in have]  # v2: cgroup.freeze is core
    return f"rootless mode: the delegated cgroup lacks {', '.join(missing)}" if missing else ""


def requires_cgroup(*names: str) -> pytest.MarkDecorator:
    """Skip unless the controllers are usable here (the cgroup2 tier may lack some)."""
    reason = cgroup_controller_missing(*names)
    return pytest.mark.skipif(bool(reason), reason=f"requires the {'/'.join(names)} controller: {reason}")


def requires_tool(name: str, package: str | None = None) -> pytest.MarkDecorator:
    """Skip unless ``name`` is on PATH; the reason says what to install."""
    package = package or APT_PACKAGE.get(name, name)
    return pytest.mark.skipif(
        shutil.which(name) is None,
        reason=f"requires {name} (apt install {package})",
    )


# ---------------------------------------------------------------- tiers

def pytest_collection_modifyitems(config, items):
    """Mark tests by folder, so `-m integration` / `-m lab` select a tier."""
    for item in items:
        parts = item.path.parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        if "labs" in parts:
            item.add_marker(pytest.mark.lab)


# ---------------------------------------------------------------- session-wide leak check

_LEAK_STATE: dict = {}


def _session_roots(config) -> tuple[str, ...]:
    # Every per-test store lives below pytest's base temp directory.
    factory = getattr(config, "_tmp_path_factory", None)
    return (str(factory.getbasetemp()),) if factory is not None else ()


def pytest_sessionstart(session):
    # As a user (the rootless tier, tools/rootless_tier.py), the engine's commands join the
    # user's namespace; joining first makes the snapshots compare the same mount table.
    from sandbox import rootless
    _LEAK_STATE["holder_before"] = rootless.holder_pid() if os.geteuid() != 0 else None
    if rootless.join_if_wanted() is not None:
        pass   # threads already (a plugin's): the engine says why when a test needs the namespace
    _LEAK_STATE["roots"] = _session_roots(session.config)
    _LEAK_STATE["before"] = leaks.snapshot(_LEAK_STATE["roots"])


def pytest_sessionfinish(session, exitstatus):
    before = _LEAK_STATE.get("before")
    if before is None or session.config.option.collectonly:
        return
    if os.geteuid() != 0 and _LEAK_STATE.get("holder_before") is None:
        from sandbox import rootless
        rootless.stop()   # the namespace holder this session's first command made (Podman's pause process)
    after = leaks.snapshot(_LEAK_STATE["roots"])
    found = leaks.diff(before, after)
    _LEAK_STATE["found"] = found
    # Leave the machine as we found it: empty parent groups (sandbox/) that this
    # session created go too, deepest first; rmdir fails harmlessly on a busy one.
    for path in sorted(after.cgroups - before.cgroups, key=len, reverse=True):
        try:
            os.rmdir(path)
        except OSError:
            pass
    if found and session.exitstatus == 0:
        session.exitstatus = 1
    if found and session.config.pluginmanager.get_plugin("terminalreporter") is None:
        print("LEAKS: the tests left kernel state behind:\n  " + "\n  ".join(found))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    found = _LEAK_STATE.get("found")
    if found:
        terminalreporter.write_sep("=", "LEAKS: the tests left kernel state behind",
                                   red=True, bold=True)
        for line in found:
            terminalreporter.write_line(f"  {line}", red=True)


# ---------------------------------------------------------------- fixtures

def _unmount_below(root: str) -> list[str]:
    """Lazily unmount everything at or below root, newest first."""
    leaked = leaks.mounts_below(root)
    for m in reversed(leaked):
        subprocess.run(["umount", "-l", m], stderr=subprocess.DEVNULL, check=False)
    return leaked


@pytest.fixture
def sandbox_root(tmp_path, monkeypatch):
    """A fresh, empty store for one test, exported as $SANDBOX_ROOT.

    At teardown anything still mounted below it is unmounted and anything
    still running for it is killed, and the test fails: a test must clean up
    after itself, and a leak must not be hidden.
    """
    root = tmp_path / "sandbox-root"
    root.mkdir()
    monkeypatch.setenv("SANDBOX_ROOT", str(root))
    yield root

    problems = []
    procs = leaks._processes((str(root),))
    for p in sorted(procs, key=lambda p: p.pid):
        problems.append(f"process left running: {p}")
        try:
            os.kill(p.pid, 9)
        except OSError:
            pass
    for m in _unmount_below(str(root)):
        problems.append(f"mount left behind: {m}")
    if problems:
        pytest.fail("the test leaked (cleaned up now):\n  " + "\n  ".join(problems),
                    pytrace=False)


def _is_static_elf(path: str) -> bool:
    """True when the ELF file has no PT_INTERP program header (the engine's own check)."""
    from sandbox.errors import BootstrapError
    from sandbox.image.bootstrap import is_static_elf
    try:
        return is_static_elf(Path(path))
    except (OSError, BootstrapError):
        return False


@pytest.fixture(scope="session")
def busybox_binary() -> str:
    """Path of a statically linked busybox (Debian: busybox-static)."""
    candidates = [shutil.which("busybox"), "/bin/busybox", "/usr/bin/busybox"]
    for c in candidates:
        if c and os.path.isfile(c) and _is_static_elf(c):
            return os.path.realpath(c)
    pytest.skip("requires a static busybox (apt install busybox-static)")
