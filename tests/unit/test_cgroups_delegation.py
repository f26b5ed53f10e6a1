"""sandbox.cgroups.delegation against fake trees in tmp_path: which group is the user's, and evacuation.

Whether a group is writable is asked of the kernel with access(2), so the
cases that need "not writable" run in a child that became ``nobody``
(root may write anything).  The real thing, a user with a delegated group
in a cgroup2 hierarchy, is tests/integration/test_rootless_cgroup2.py.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sandbox.cgroups import fs
from sandbox.cgroups.delegation import FILES, LEAF, evacuate, find, own_group
from sandbox.cgroups.v2 import V2Cgroup

NOBODY = 65534


def put(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def group(root: Path, rel: str, owner: int | None = None, controllers: str = "cpu memory pids") -> Path:
    """A group directory as the kernel shows it; ``owner`` gets what a delegation hands over."""
    path = root / rel
    for name in (*FILES, "cgroup.threads"):
        put(path / name)
    put(path / "cgroup.controllers", controllers + "\n")
    if owner is not None:
        for p in (path, *(path / name for name in (*FILES, "cgroup.threads"))):
            os.chown(p, owner, owner)
    return path


def proc_cgroup(tmp_path: Path, line: str) -> Path:
    return put(tmp_path / "proc-self-cgroup", f"12:pids:/\n{line}\n")


def as_nobody(fn: Callable[[], Any]) -> Any:
    """``fn()`` in a child process whose uid is nobody's; its result pickled back."""
    if os.geteuid() != 0:
        pytest.skip("needs root to become nobody")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                result = fn()
            except BaseException as e:   # shown by the parent
                result = e
            os.write(w, pickle.dumps(result))
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    result = pickle.loads(data)
    if isinstance(result, BaseException):
        raise result
    return result


@pytest.fixture
def tree():
    """A directory nobody can reach (pytest's tmp_path is below a 0700 directory of root's)."""
    path = Path(tempfile.mkdtemp(prefix="sbx-deleg-"))
    path.chmod(0o755)
    old = os.umask(0o022)
    try:
        yield path
    finally:
        os.umask(old)
        shutil.rmtree(path)


def test_the_unified_line_of_proc_self_cgroup(tmp_path):
    assert own_group(proc_cgroup(tmp_path, "0::/user.slice/user-1000.slice/session-2.scope")) == \
        "/user.slice/user-1000.slice/session-2.scope"
    assert own_group(put(tmp_path / "v1-only", "4:memory:/x\n")) is None
    assert own_group(tmp_path / "missing") is None


def test_the_root_group_and_no_unified_line_are_never_delegated(tmp_path):
    assert "root cgroup" in find(tmp_path, proc_cgroup(tmp_path, "0::/")).reason
    assert "no cgroup v2 group" in find(tmp_path, put(tmp_path / "v1", "4:memory:/x\n")).reason
    assert "outside its cgroup namespace" in find(tmp_path, proc_cgroup(tmp_path, "0::/../x")).reason


def test_a_group_chowned_to_the_user_is_theirs(tree):
    mine = group(tree, "user.slice/app.slice/run-1.scope", owner=NOBODY)
    own = proc_cgroup(tree, "0::/user.slice/app.slice/run-1.scope")
    found = as_nobody(lambda: find(tree, own))
    assert found.available and found.group == "user.slice/app.slice/run-1.scope" and found.path == mine
    assert found.controllers() == ["cpu", "memory", "pids"]


def test_a_group_missing_one_handed_over_file_is_not(tree):
    mine = group(tree, "session-2.scope", owner=NOBODY)
    os.chown(mine / "cgroup.subtree_control", 0, 0)   # systemd without Delegate=yes chowns nothing at all
    own = proc_cgroup(tree, "0::/session-2.scope")
    found = as_nobody(lambda: find(tree, own))
    assert not found.available and found.controllers() == []
    assert "cgroup.subtree_control is not writable" in found.reason and "/session-2.scope" in found.reason


def test_after_evacuation_the_leafs_parent_is_the_delegated_group(tree):
    group(tree, "u.scope", owner=NOBODY)
    group(tree, f"u.scope/{LEAF}", owner=NOBODY)
    own = proc_cgroup(tree, f"0::/u.scope/{LEAF}")
    found = as_nobody(lambda: find(tree, own))
    assert found.available and found.group == "u.scope"
    # an "init" whose parent is not the user's is just their group
    group(tree, f"other/{LEAF}", owner=NOBODY)
    own = proc_cgroup(tree, f"0::/other/{LEAF}")
    found = as_nobody(lambda: find(tree, own))
    assert found.available and found.group == f"other/{LEAF}"


def kernel_moves(monkeypatch) -> list[tuple[str, str]]:
    """fs.write to a fake cgroup.procs moves the pid there, as the kernel would; the moves, in order."""
    moves: list[tuple[str, str]] = []
    real = fs.write

    def write(path: Path, value: str | int) -> None:
        if path.name == "cgroup.procs":
            for procs in path.parent.parent.glob("**/cgroup.procs"):
                pids = procs.read_text().split()
                if str(value) in pids:
                    procs.write_text("\n".join(p for p in pids if p != str(value)))
            moves.append((path.parent.name, str(value)))
        real(path, value if path.name != "cgroup.procs" else
             "\n".join((path.read_text().split() if path.exists() else []) + [str(value)]))

    monkeypatch.setattr(fs, "write", write)
    return moves


def test_evacuate_moves_every_process_into_the_leaf(tmp_path, monkeypatch):
    moves = kernel_moves(monkeypatch)
    mine = group(tmp_path, "u.scope")
    put(mine / "cgroup.procs", "101\n102\n")
    put(mine / LEAF / "cgroup.procs")       # what mkdir makes in a real hierarchy
    evacuate(mine)
    assert moves == [(LEAF, "101"), (LEAF, "102")]
    assert (mine / "cgroup.procs").read_text() == "" and (mine / LEAF / "cgroup.procs").read_text().split() == \
        ["101", "102"]
    evacuate(mine)      # nothing left: nothing done
    assert len(moves) == 2


def test_a_delegated_group_is_made_below_the_users_and_enables_only_from_there(tmp_path, monkeypatch):
    moves = kernel_moves(monkeypatch)
    put(tmp_path / "cgroup.controllers", "cpu memory pids io\n")
    put(tmp_path / "cgroup.subtree_control", "cpu pids\n")
    mine = group(tmp_path, "u.scope", controllers="cpu pids")
    put(mine / "cgroup.procs", "101\n")
    put(mine / LEAF / "cgroup.procs")
    cg = V2Cgroup("sandbox/c1", tmp_path, "u.scope")
    assert cg.path == mine / "sandbox" / "c1"
    cg.create()
    assert moves == [(LEAF, "101")] and (mine / LEAF / "cgroup.procs").read_text() == "101"   # out of the way first ("no internal processes")
    assert (tmp_path / "cgroup.subtree_control").read_text() == "cpu pids\n"   # above: not ours, untouched
    assert (mine / "cgroup.subtree_control").read_text() == "+pids"            # the last of +cpu, +pids
    assert cg.exists()
    cg.destroy()
    assert not (mine / "sandbox").exists() and (mine / LEAF).is_dir()   # the empty parent goes, init stays
