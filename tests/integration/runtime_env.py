"""Fixtures for the runtime tests: a busybox rootfs, bundles, a runtime root.

Bundles get Docker's default spec (``default_spec`` with this host's bounding
set and cgroup version), so what the tests see inside is what ``docker run``
would give.  Every container is deleted with force when its test ends, so a
failing test leaves nothing for the session's leak check.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox import kernel
from sandbox.cgroups import detect
from sandbox.runtime import Runtime
from sandbox.runtime.spec import ContainerOptions, default_spec

REPO = Path(__file__).resolve().parents[2]
PROBE_SOURCE = REPO / "tests" / "probes" / "seccomp_probe.c"


def cgroup_version() -> str:
    found = detect()
    return found if found in ("v1", "v2") else "v2"


def spec_for(args: list[str], **options: Any) -> dict[str, Any]:
    opts = ContainerOptions(args=args, hostname=options.pop("hostname", "box"), **options)
    return default_spec("rootfs", opts, host_bounding_set=kernel.host_bounding_set(),
                        cgroup_version=cgroup_version())


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory, busybox_binary) -> Path:
    """A busybox tree shared by the session's bundles (tests must not write to it)."""
    from sandbox.image.bootstrap import _busybox_tree

    root = tmp_path_factory.mktemp("busybox") / "rootfs"
    root.mkdir()
    _busybox_tree(root, Path(busybox_binary), 0)
    return root


@pytest.fixture(scope="session")
def probe_binary(tmp_path_factory) -> Path:
    """tests/probes/seccomp_probe.c, linked statically (the image has no libc)."""
    if shutil.which("gcc") is None:
        pytest.skip("requires gcc and libc6-dev for the static seccomp probe (apt install gcc libc6-dev)")
    out = tmp_path_factory.mktemp("probe") / "seccomp_probe"
    built = subprocess.run(["gcc", "-static", "-O2", "-pthread", "-o", str(out), str(PROBE_SOURCE)],
                           capture_output=True, text=True)
    if built.returncode != 0:
        pytest.skip(f"cannot build the static probe (apt install libc6-dev): {built.stderr.strip()[:200]}")
    return out


class Bundles:
    """Makes bundles below one test's tmp_path and runs them through the runtime."""

    def __init__(self, tmp: Path, rootfs: Path, runtime: Runtime) -> None:
        self.tmp = tmp
        self.rootfs = rootfs
        self.runtime = runtime
        self.count = 0

    def make(self, args: list[str], *, edit: Callable[[dict[str, Any]], None] | None = None,
             rootfs: Path | None = None, **options: Any) -> Path:
        self.count += 1
        bundle = self.tmp / f"bundle{self.count}"
        bundle.mkdir()
        spec = spec_for(args, **options)
        # An absolute root.path: runc refuses a symlinked rootfs, and bundles share one tree.
        spec["root"]["path"] = str(rootfs or self.rootfs)
        if edit is not None:
            edit(spec)
        (bundle / "config.json").write_text(json.dumps(spec))
        return bundle

    def cli(self, *args: str, cwd: Path | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """``python -m sandbox.runtime --root ROOT ARGS`` (its output captured)."""
        return run_captured([sys.executable, "-m", "sandbox.runtime", "--root", self.runtime.root, *args],
                            cwd=cwd, timeout=timeout)

    def run(self, args: list[str], **kw: Any) -> tuple[int, str]:
        """Create, start, wait, delete one container through the CLI: (exit code, stdout+stderr)."""
        bundle = self.make(args, **kw)
        out = self.cli("run", "--bundle", str(bundle), f"c{self.count}")
        return out.returncode, out.stdout + out.stderr


def run_captured(cmd: list[str], *, cwd: Path | None = None,
                 timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` with stdout and stderr in files, not pipes.

    A container made by ``create`` keeps the create command's stdout and
    stderr; with pipes, waiting for their end would wait for the container.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                              text=True, timeout=timeout)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(cmd, proc.returncode, out.read(), err.read())


@pytest.fixture
def runtime(tmp_path) -> Iterator[Runtime]:
    rt = Runtime(str(tmp_path / "state"))
    yield rt
    for container in rt.containers():
        container.delete(force=True)


@pytest.fixture
def bundles(tmp_path, busybox_rootfs, runtime) -> Bundles:
    return Bundles(tmp_path, busybox_rootfs, runtime)


@pytest.fixture
def reaper() -> Iterator[None]:
    """Make this process the subreaper, so a container's init (a grandchild) can be waited for."""
    kernel.set_child_subreaper(True)
    yield
    kernel.set_child_subreaper(False)


def wait_exit(pid: int) -> int:
    """Wait for a container init adopted by this (subreaper) process; its exit code."""
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def read_pipe(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode()


def cgroup_dirs(name: str) -> list[str]:
    """Directories of group ``name`` that exist on any hierarchy (v1 or the unified mount)."""
    base = Path("/sys/fs/cgroup")
    found = [str(base / name)] if (base / name).is_dir() else []
    for hierarchy in base.iterdir():
        if (hierarchy / name).is_dir():
            found.append(str(hierarchy / name))
    return found
