"""The fuse-overlayfs driver end to end: the overlay layout mounted by the fuse-overlayfs program.

This kernel mounts overlay (also in a user namespace), so the driver is
forced with ``SANDBOX_STORAGE_DRIVER=fuse-overlayfs``: for the module's store
as root (its supervisor inherits the variable), and for an unprivileged
user in their own user namespace, with /dev/fuse made 0666 for the test (as
Debian's udev makes it; this VM keeps it 0600) and put back after.  The
claims: a container's rootfs is a fuse mount served by a fuse-overlayfs
process; a deletion of an image's file (a whiteout) and an image directory
made again (opaque) show in ``diff``, survive ``commit`` and read the same
from the committed image; a build with COPY and RUN works; ``export`` sees
the container's view; ``rm`` leaves no mount and no fuse-overlayfs process.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from sandbox import Engine
from tests import leaks
from tests.conftest import requires_containers, requires_root
from tests.integration.container_env import clean_engine
from tests.integration.test_vfs_driver import wait_for

ENV = "SANDBOX_STORAGE_DRIVER"
FUSE_DEV = "/dev/fuse"

#: A whiteout (an image file deleted), an opaque directory (an image directory made again),
#: a file written then deleted in an image directory, and a new file.
CHANGES = " && ".join([
    "rm /bin/true",
    "rm -rf /usr && mkdir /usr && echo n > /usr/new",
    "echo tmp > /etc/gone && rm /etc/gone",
    "echo hi > /hello",
])


def _why_no_fuse() -> str | None:
    if shutil.which("fuse-overlayfs") is None:
        return "fuse-overlayfs is not installed (apt-get install fuse-overlayfs)"
    if not os.path.exists(FUSE_DEV):
        return f"no {FUSE_DEV} here"
    return None


pytestmark = [requires_containers,
              pytest.mark.skipif(bool(_why_no_fuse()), reason=_why_no_fuse() or "-")]


@contextlib.contextmanager
def fuse_mode(mode: int):
    """/dev/fuse with ``mode`` for the test where we may change it (root on the host), then as it was."""
    old = stat.S_IMODE(os.stat(FUSE_DEV).st_mode)
    try:
        os.chmod(FUSE_DEV, mode)
    except PermissionError:     # a user, or root of a user namespace (the rootless tier)
        if not os.access(FUSE_DEV, os.R_OK | os.W_OK):
            pytest.skip(f"{FUSE_DEV} is {old:o}: this user cannot open it (Debian makes it 0666)")
        yield
        return
    try:
        yield
    finally:
        os.chmod(FUSE_DEV, old)


def fuse_processes(needle: str) -> list[int]:
    """Pids of fuse-overlayfs processes whose command line mentions ``needle``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if argv and os.path.basename(argv[0]) == b"fuse-overlayfs" and needle.encode() in b" ".join(argv):
                found.append(int(pid))
    return found


def gone_or_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:       # gone (ENOENT), or reaped between the open and the read (ESRCH)
        return True


def fuse_mounts(mountinfo: str, needle: str) -> list[str]:
    return [line for line in mountinfo.splitlines() if "fuse.fuse-overlayfs" in line and needle in line]


def check_layer_view(changes: list[tuple[str, str]], ls_usr: str, true_gone: bool) -> None:
    """What every test of :data:`CHANGES` asserts: the diff lines, and the tree a run reads."""
    assert ("D", "/bin/true") in changes, changes
    assert ("A", "/usr/new") in changes and ("A", "/hello") in changes, changes
    assert not any(p == "/etc/gone" for _, p in changes), changes     # written then deleted: nothing
    assert ls_usr.split() == ["new"], ls_usr
    assert true_gone


#: fuse-overlayfs marks an opaque directory with an xattr (``trusted.overlay.opaque`` as root,
#: ``user.fuseoverlayfs.opaque`` in a user namespace) *and* a ``.wh..wh..opq`` file, and leaves a
#: 0/0 ``.wh..opq`` beside it; ``diff`` (containers/fsops.changes) reads them as the marks they are.
def diff_reads_the_marks(changes: list[tuple[str, str]]) -> None:
    assert ("D", "/usr/sbin") in changes, changes                     # hidden by the opaque /usr
    assert not any(".wh." in p for _, p in changes), changes


# --------------------------------------------------------------------------- as root (or the tier's user)


@pytest.fixture(scope="module")
def engine(tmp_path_factory, busybox_binary):
    # The variable is set for the supervisor this module's first client starts, too.
    with fuse_mode(0o666), pytest.MonkeyPatch.context() as patch:
        patch.setenv(ENV, "fuse-overlayfs")
        eng = Engine(tmp_path_factory.mktemp("fuse") / "root")
        eng.images.bootstrap("busybox", binary=busybox_binary)
        try:
            yield eng
        finally:
            assert not clean_engine(eng), "mounts left below the store"
            wait_for(lambda: not fuse_processes(str(eng.root)))


def test_a_container_runs_on_a_fuse_mount_that_rm_takes_away(engine):
    c = engine.containers.run("busybox", ["sleep", "30"], detach=True)
    cdir = str(c.dir)
    try:
        assert engine.info()["Driver"] == "fuse-overlayfs"
        assert c.attrs["Driver"] == "fuse-overlayfs"
        assert fuse_mounts(Path("/proc/self/mountinfo").read_text(), cdir + "/rootfs")
        assert fuse_processes(cdir)
        assert c.exec_run(["sh", "-c", "echo x > /x && cat /x"]).output == b"x\n"
        assert (Path(cdir) / "upper" / "x").read_text() == "x\n"     # the overlay layout: an upper dir
    finally:
        c.remove(force=True)
    assert not leaks.mounts_below(str(engine.root))
    wait_for(lambda: not fuse_processes(cdir))    # the daemon exits once its mount is gone


def test_a_client_that_forces_the_driver_gets_it_from_a_supervisor_that_does_not(tmp_path, busybox_binary,
                                                                                monkeypatch):
    """The record's driver decides the mount, not the supervisor's environment."""
    monkeypatch.delenv(ENV, raising=False)
    with fuse_mode(0o666):
        eng = Engine(tmp_path / "root")
        eng.images.bootstrap("busybox", binary=busybox_binary)
        try:
            eng.supervisor.call("ping")              # started without the variable
            monkeypatch.setenv(ENV, "fuse-overlayfs")
            c = eng.containers.run("busybox", ["sleep", "30"], detach=True)
            cdir = str(c.dir)
            try:
                assert c.attrs["Driver"] == "fuse-overlayfs"
                assert fuse_mounts(Path("/proc/self/mountinfo").read_text(), cdir + "/rootfs")
            finally:
                c.remove(force=True)
            wait_for(lambda: not fuse_processes(cdir))
        finally:
            assert not clean_engine(eng), "mounts left below the store"


def test_whiteout_and_opaque_show_in_diff_and_survive_commit(engine):
    c = engine.containers.run("busybox", ["sh", "-c", CHANGES], detach=True)
    try:
        assert c.wait()["StatusCode"] == 0
        changes = c.changes()
        image = c.commit("fusecommit", "v1")
        assert len(image.diff_ids) == len(engine.images.get("busybox").diff_ids) + 1
        ls_usr = engine.run("fusecommit:v1", ["ls", "-A", "/usr"]).output.decode()
        true_gone = engine.run("fusecommit:v1", ["ls", "/bin/true"]).exit_code != 0
        check_layer_view(changes, ls_usr, true_gone)
        assert engine.run("fusecommit:v1", ["cat", "/hello"]).output == b"hi\n"
        assert engine.run("fusecommit:v1", ["ls", "-A", "/usr"]).output == b"new\n"   # no mark as a file
        assert engine.run("fusecommit:v1", ["ls", "/etc/gone"]).exit_code != 0
        # The layer itself: fuse-overlayfs's bookkeeping stays out, each mark once.
        import gzip, tarfile
        blob = engine.store.blob_path(image.layers[-1].digest)
        with tarfile.open(fileobj=gzip.open(blob) if blob.read_bytes()[:2] == b"\x1f\x8b" else blob.open("rb")) as tar:
            members = tar.getmembers()
        names = [m.name for m in members]
        assert not [n for m in members for n in m.pax_headers if "fuseoverlayfs" in n], names
        assert names.count("usr/.wh..wh..opq") == 1 and "usr/.wh..opq" not in names, names
        assert len(names) == len(set(names)), names
    finally:
        c.remove(force=True)
        engine.images.remove("fusecommit:v1", force=True)



def test_diff_lists_no_mark_of_fuse_overlayfs(engine):
    c = engine.containers.run("busybox", ["sh", "-c", CHANGES], detach=True)
    try:
        assert c.wait()["StatusCode"] == 0
        diff_reads_the_marks(c.changes())
    finally:
        c.remove(force=True)


def test_a_process_that_does_not_force_the_driver_mounts_the_upper_dir_with_fuse_too(engine, tmp_path,
                                                                                     monkeypatch):
    c = engine.containers.run("busybox", ["sh", "-c", CHANGES], detach=True)
    try:
        assert c.wait()["StatusCode"] == 0
        monkeypatch.delenv(ENV)
        c.copy_from("/usr", str(tmp_path / "usr"))      # this process mounts the stopped container's view
        assert sorted(os.listdir(tmp_path / "usr")) == ["new"]
    finally:
        c.remove(force=True)


def test_export_reads_the_containers_view(engine):
    c = engine.containers.run("busybox", ["sh", "-c", CHANGES], detach=True)
    try:
        assert c.wait()["StatusCode"] == 0
        buf = io.BytesIO()
        c.export(buf)
        names = set(tarfile.open(fileobj=io.BytesIO(buf.getvalue())).getnames())
        assert {"bin/busybox", "usr/new", "hello"} <= names
        assert "bin/true" not in names and not any(n.startswith("usr/bin") for n in names)
        assert not any(".wh." in n for n in names)
        assert not leaks.mounts_below(str(engine.root))
    finally:
        c.remove(force=True)


def test_a_build_with_copy_and_run(engine, tmp_path):
    (tmp_path / "data.txt").write_text("data\n")
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nCOPY data.txt /data.txt\n"
        f"RUN {CHANGES}\n"
        "RUN rm /data.txt && echo again > /data.txt\n")
    image = engine.build(tmp_path, tags=["fusebuild"])
    try:
        out = engine.run("fusebuild", ["sh", "-c", "cat /data.txt /hello; ls -A /usr; ls /bin/true || echo gone"])
        assert out.output == b"again\nhi\nnew\ngone\n", out.output
        assert len(image.layers) == len(engine.images.get("busybox").layers) + 3
        assert not leaks.mounts_below(str(engine.root))
        assert not fuse_processes(str(engine.root / "tmp"))    # the steps' mounts went with them
    finally:
        engine.images.remove("fusebuild", force=True)


# --------------------------------------------------------------------------- a rootless user, driven as root


@pytest.fixture(scope="module")
def fuse_user(busybox_binary):
    from tests.integration.test_rootless import _new_user
    with fuse_mode(0o666), _new_user("sbfuse", busybox_binary) as u:
        if not any(line.startswith(u.name + ":") for line in Path("/etc/subuid").read_text().splitlines()):
            subprocess.run(["usermod", "--add-subuids", "470000-535535", "--add-subgids", "470000-535535",
                            u.name], check=True)
        u.env[ENV] = "fuse-overlayfs"
        u.sandbox("bootstrap", "busybox", "--binary", busybox_binary)
        yield u
        u.sandbox("system", "supervisor", "stop", check=False)


def _holder_mountinfo(u) -> str:
    pid = int(Path(f"/tmp/sandbox-rootless-{u.pw.pw_uid}/rootless.pid").read_text().split()[0])
    return Path(f"/proc/{pid}/mountinfo").read_text()


@requires_root
def test_rootless_run_diff_commit_export_build_and_rm(fuse_user, tmp_path):
    u = fuse_user
    assert "Storage Driver: fuse-overlayfs" in u.sandbox("info").stdout
    cid = u.sandbox("run", "-d", "busybox", "sh", "-c", CHANGES + " && sleep 30").stdout.strip()
    try:
        wait_for(lambda: "/hello" in u.sandbox("diff", cid).stdout)
        assert fuse_mounts(_holder_mountinfo(u), cid)      # in the user's namespace, not the host's
        assert not fuse_mounts(Path("/proc/self/mountinfo").read_text(), cid)
        changes = [tuple(line.split(None, 1)) for line in u.sandbox("diff", cid).stdout.splitlines()]
        u.sandbox("commit", cid, "fuserl:v1")
        ls_usr = u.sandbox("run", "--rm", "fuserl:v1", "ls", "-A", "/usr").stdout
        true_gone = u.sandbox("run", "--rm", "fuserl:v1", "ls", "/bin/true", check=False).returncode != 0
        check_layer_view(changes, ls_usr, true_gone)
        print("rootless diff:", changes)    # shown with -rA: what the marks look like here
        u.sandbox("export", "-o", str(u.home / "c.tar"), cid)
        names = set(tarfile.open(u.home / "c.tar").getnames())
        assert "usr/new" in names and "bin/true" not in names and not any(".wh." in n for n in names)
    finally:
        u.sandbox("rm", "-f", cid)
    wait_for(lambda: not fuse_mounts(_holder_mountinfo(u), cid))
    wait_for(lambda: not fuse_processes(cid))
    ctx = u.home / "ctx"
    u.run("mkdir", "-p", str(ctx))
    u.run("sh", "-c", f"echo data > {ctx}/data.txt; printf 'FROM busybox\\nCOPY data.txt /data.txt\\n"
                      f"RUN rm -rf /usr && mkdir /usr && echo b > /usr/b && chown 1234 /usr/b\\n' > {ctx}/Dockerfile")
    u.sandbox("build", "-t", "fuserlbuild", str(ctx))
    out = u.sandbox("run", "--rm", "fuserlbuild", "sh", "-c", "cat /data.txt; ls -A /usr; stat -c %u /usr/b").stdout
    assert out == "data\nb\n1234\n", out
    u.sandbox("rmi", "fuserlbuild", "fuserl:v1")
    assert not fuse_mounts(_holder_mountinfo(u), str(u.home))
    wait_for(lambda: not fuse_processes(str(u.home)))


def test_the_mount_outlives_a_killed_supervisor_and_goes_with_rm(engine):
    import signal
    c = engine.containers.run("busybox", ["sleep", "30"], detach=True)
    cdir = str(c.dir)
    try:
        pid = engine.supervisor.call("ping")["pid"]
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: gone_or_zombie(pid))
        assert fuse_mounts(Path("/proc/self/mountinfo").read_text(), cdir + "/rootfs")
        assert fuse_processes(cdir)              # fuse-overlayfs is not the supervisor's to take along
        c = engine.containers.get(c.id)          # a new supervisor adopts the running container
        assert c.exec_run(["sh", "-c", "echo after > /after && cat /after"]).output == b"after\n"
    finally:
        c.remove(force=True)
    assert not leaks.mounts_below(str(engine.root))
    wait_for(lambda: not fuse_processes(cdir))


def test_recovery_detaches_the_fuse_mount_of_a_dead_scratch_dir(engine):
    from sandbox.image.layers import mount_overlay
    from sandbox.image.store import Store
    dead = engine.store.tmp_dir / "step-deadbeefdeadbeef"
    for d in ("lower", "upper", "work", "merged"):
        (dead / d).mkdir(parents=True)
    (dead / "lower" / "f").write_text("from below\n")
    (dead.parent / (dead.name + ".lock")).write_text("")     # its owner was killed: no flock held
    mount_overlay(dead / "merged", f"lowerdir={dead}/lower,upperdir={dead}/upper,workdir={dead}/work")
    assert (dead / "merged" / "f").read_text() == "from below\n" and fuse_processes(str(dead))
    Store(engine.root)                                       # recovery at the next start
    assert not dead.exists() and not leaks.mounts_below(str(engine.root))
    assert (dead.parent.parent / "layers").is_dir()          # nothing deleted through the mount
    wait_for(lambda: not fuse_processes(str(dead)))
