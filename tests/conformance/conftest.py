"""The conformance harness: one bundle, run under our runtime and under runc, compared.

Every test here comes from a MUST of the OCI runtime spec (runtime.md,
config.md, config-linux.md; the section is in the test's module and name).
A test builds a bundle -- from ``runc spec`` where runc is installed, else
from our own generator (``python -m sandbox.runtime spec``) -- edits the
fields it is about, and runs it through :class:`Both`: the same bundle,
the same command line, once per runtime, each with its own state root.  A
test asserts on our result and, where runc ran, that runc's result is the
same, so a difference from runc is a failing comparison rather than a
silent one.

Containers are deleted with ``--force`` at the end of every test, and each
runtime's state root is a fresh temporary directory, so nothing outlives a
test (the session's leak check looks for mounts, cgroups and processes).
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.runtime_env import busybox_rootfs  # noqa: F401

RUNC = shutil.which("runc")

#: Where runc 1.1 departs from the spec's MUST and we follow the spec: the test
#: checks ours against the spec and runc against what it is known to do, so a
#: change in either still fails.  Test name -> why.
KNOWN_DIFFERENCES = {
    "test_hooks_run_in_order_with_the_state_on_stdin":
        "runc gives poststart hooks the state 'created'; the process has been started, and "
        "runtime.md's lifecycle has the container running by then: ours says 'running'",
    "test_a_failing_poststart_hook_is_a_warning_and_the_container_runs":
        "runc kills and deletes the container when a poststart hook fails; config.md says the "
        "runtime MUST log a warning and the lifecycle continues: ours does that",
    "test_rootfs_propagation[shared]":
        "runc leaves the new root private when linux.rootfsPropagation is \"shared\"; ours makes "
        "it shared, as the field asks (after pivot_root, which refuses a shared root)",
    "test_without_a_mount_namespace_the_root_is_still_the_containers":
        "runc makes a container's mounts in the caller's namespace when the spec has no mount "
        "namespace and leaves them there after delete; ours takes them away at delete",
    "test_the_mount_table_matches_runc":
        "runc leaves the tmpfs at /sys/fs/cgroup (v1) rw, though a write into it fails with "
        "EACCES; ours remounts it ro as the mount's options ask (a write fails with EROFS)",
    "test_masked_paths":
        "runc binds /dev/null over a masked file, which accepts writes; ours binds an empty "
        "read-only regular file (a write fails with EROFS). Both read empty",
}


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


class Runtime:
    """One runtime's command line with its own ``--root``."""

    def __init__(self, name: str, argv: list[str], root: Path) -> None:
        self.name, self.argv, self.root = name, argv, root
        self.made: list[str] = []

    def __call__(self, *args: str, cwd: Path | None = None, timeout: float = 30,
                 stdin: str | None = None) -> Result:
        """Run one verb; stdout and stderr go to files (a created container keeps them open)."""
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            proc = subprocess.run([*self.argv, "--root", str(self.root), *args], cwd=cwd, stdout=out,
                                  stderr=err, input=stdin, text=True, timeout=timeout,
                                  stdin=None if stdin is not None else subprocess.DEVNULL)
            out.seek(0)
            err.seek(0)
            return Result(proc.returncode, out.read(), err.read())

    def state(self, cid: str) -> dict[str, Any] | None:
        r = self("state", cid)
        return json.loads(r.out) if r.code == 0 else None

    def cleanup(self) -> None:
        for cid in self.made:
            self("delete", "--force", cid)


class Both:
    """Runs a bundle under every runtime present: ours always, runc where installed."""

    def __init__(self, tmp: Path, rootfs: Path) -> None:
        self.tmp, self.rootfs = tmp, rootfs
        self.ours = Runtime("sandbox", [sys.executable, "-m", "sandbox.runtime"], tmp / "state-ours")
        self.runtimes = [self.ours]
        if RUNC:
            self.runtimes.append(Runtime("runc", [RUNC], tmp / "state-runc"))
        self.count = 0

    def spec(self, args: list[str] | None = None) -> dict[str, Any]:
        """A bundle's config: ``runc spec`` (or ours without runc), terminal off, our busybox root."""
        where = self.tmp / "spec-template"
        if not (where / "config.json").exists():
            where.mkdir(exist_ok=True)
            maker = [RUNC, "spec"] if RUNC else [sys.executable, "-m", "sandbox.runtime", "spec"]
            subprocess.run([*maker, "--bundle", str(where)], check=True, capture_output=True)
        spec = json.loads((where / "config.json").read_text())
        spec["process"]["terminal"] = False
        # An absolute root.path: runc refuses a symlinked rootfs, and bundles share one tree.
        spec["root"]["path"] = str(self.rootfs)
        if args is not None:
            spec["process"]["args"] = args
        return spec

    def bundle(self, spec: dict[str, Any]) -> Path:
        self.count += 1
        path = self.tmp / f"bundle{self.count}"
        path.mkdir()
        (path / "config.json").write_text(json.dumps(spec))
        return path

    def run(self, spec: dict[str, Any], *, timeout: float = 30) -> dict[str, Result]:
        """``run`` the same bundle under each runtime; {runtime name: result}."""
        bundle = self.bundle(copy.deepcopy(spec))
        out = {}
        for rt in self.runtimes:
            cid = f"c{self.count}-{rt.name}"
            rt.made.append(cid)
            out[rt.name] = rt("run", "--bundle", str(bundle), cid, cwd=bundle, timeout=timeout)
            rt("delete", "--force", cid)
        return out

    def each(self, spec: dict[str, Any]) -> Iterator[tuple[Runtime, Path, str]]:
        """(runtime, bundle, a fresh id) for tests that drive the verbs themselves."""
        bundle = self.bundle(copy.deepcopy(spec))
        for rt in self.runtimes:
            cid = f"c{self.count}-{rt.name}"
            rt.made.append(cid)
            yield rt, bundle, cid

    def cleanup(self) -> None:
        for rt in self.runtimes:
            rt.cleanup()


def same(results: dict[str, Result], key: Callable[[Result], Any] = lambda r: (r.code, r.out)) -> Any:
    """Assert every runtime gave the same ``key`` of its result; return ours."""
    ours = key(results["sandbox"])
    if "runc" in results:
        assert ours == key(results["runc"]), (
            f"ours and runc differ:\n  ours: {results['sandbox']}\n  runc: {results['runc']}")
    return ours


@pytest.fixture
def both(tmp_path, busybox_rootfs) -> Iterator[Both]:  # noqa: F811
    b = Both(tmp_path, busybox_rootfs)
    yield b
    b.cleanup()

