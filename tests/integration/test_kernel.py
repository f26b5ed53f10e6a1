"""sandbox.kernel against the real kernel.

Every test that changes process state does it in a forked child: the child
calls the wrappers, sends plain data back over a pipe and leaves with
os._exit, so the test process keeps its namespaces, mounts, capabilities and
seccomp filter.  Mounts happen only in a child's own mount namespace after
``/`` was made MS_REC|MS_PRIVATE, so they vanish with the child.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import socket
import stat
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import pytest

from sandbox import kernel
from sandbox.errors import KernelError

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="requires root (namespaces, mounts, capabilities)")]

requires_seccomp = pytest.mark.skipif(not kernel.seccomp_available(),
                                      reason="requires libseccomp (apt install libseccomp2)")


class ChildFailed(AssertionError):
    pass


def run_forked(fn: Callable[[], Any], timeout: float = 30) -> tuple[Any, int]:
    """Run ``fn`` in a forked child; return (what it returned, its wait status).

    The result is None when the child died before answering (e.g. killed by seccomp).
    An exception in the child is raised here as ChildFailed with its traceback.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        try:
            os.close(r)
            try:
                answer: tuple[str, Any] = ("ok", fn())
            except BaseException:  # noqa: BLE001 - the child must never return into pytest
                answer = ("error", traceback.format_exc())
            data = pickle.dumps(answer)
            while data:
                data = data[os.write(w, data):]
        finally:
            os._exit(0)
    os.close(w)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([r], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                raise ChildFailed(f"child {pid} did not answer within {timeout}s")
            chunk = os.read(r, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    if not chunks:
        return None, status
    kind, value = pickle.loads(b"".join(chunks))
    if kind == "error":
        raise ChildFailed(f"in the forked child:\n{value}")
    return value, status


def in_child(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a forked child that must exit 0; return its result."""
    result, status = run_forked(fn)
    assert os.waitstatus_to_exitcode(status) == 0
    return result


def error_fields(fn: Callable[[], Any]) -> dict[str, Any]:
    """Call fn, which must raise KernelError; return the error's fields as plain data."""
    try:
        fn()
    except KernelError as e:
        return {"op": e.op, "path": e.path, "errno": e.errno, "hint": e.hint, "message": str(e)}
    raise AssertionError("no KernelError raised")


def private_mount_ns() -> None:
    """In a child: a new mount namespace whose mounts never propagate back to the host."""
    kernel.unshare(kernel.CLONE_NEWNS)
    kernel.mount(None, "/", None, kernel.MS_REC | kernel.MS_PRIVATE)


def mountinfo_entry(target: str) -> list[str] | None:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == target:
                return fields
    return None


@pytest.fixture(autouse=True)
def host_untouched():
    """The test process keeps its namespaces, capabilities and no_new_privs whatever a child did."""
    before = ({n: kernel.ns_inode("self", n) for n in kernel.NAMESPACES}, socket.gethostname(),
              kernel.capget(), kernel.get_no_new_privs())
    yield
    after = ({n: kernel.ns_inode("self", n) for n in kernel.NAMESPACES}, socket.gethostname(),
             kernel.capget(), kernel.get_no_new_privs())
    assert after == before


# ---------------------------------------------------------------- namespaces

def test_sethostname_in_a_new_uts_namespace_changes_only_the_child():
    host_inode = kernel.ns_inode("self", "uts")

    def child():
        kernel.unshare(kernel.CLONE_NEWUTS)
        kernel.sethostname("sandbox-kernel-test")
        kernel.setdomainname("sandbox.test")
        return socket.gethostname(), os.uname().nodename, kernel.ns_inode("self", "uts")

    name, nodename, inode = in_child(child)
    assert name == nodename == "sandbox-kernel-test"
    assert inode != host_inode
    assert socket.gethostname() != "sandbox-kernel-test"


def test_setns_by_path_rejoins_the_parents_uts_namespace():
    parent_ns = f"/proc/{os.getpid()}/ns/uts"
    host_name, host_inode = socket.gethostname(), kernel.ns_inode("self", "uts")

    def child():
        kernel.unshare(kernel.CLONE_NEWUTS)
        kernel.sethostname("sandbox-elsewhere")
        inside = socket.gethostname()
        kernel.setns(parent_ns, kernel.CLONE_NEWUTS)
        return inside, socket.gethostname(), kernel.ns_inode("self", "uts")

    inside, back, inode = in_child(child)
    assert inside == "sandbox-elsewhere"
    assert (back, inode) == (host_name, host_inode)


def test_setns_by_fd_checks_the_namespace_type():
    parent_ns = f"/proc/{os.getpid()}/ns/uts"

    def child():
        fd = os.open(parent_ns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return error_fields(lambda: kernel.setns(fd, kernel.CLONE_NEWNET)), fd
        finally:
            os.close(fd)

    err, fd = in_child(child)
    assert (err["op"], err["path"], err["errno"]) == ("setns", f"fd {fd}", 22)


def test_unshare_user_namespace_in_a_threaded_process_explains_why():
    def child():
        stop = threading.Event()
        thread = threading.Thread(target=stop.wait)
        thread.start()
        try:
            return error_fields(lambda: kernel.unshare(kernel.CLONE_NEWUSER))
        finally:
            stop.set()
            thread.join()

    err = in_child(child)
    assert (err["op"], err["path"], err["errno"]) == ("unshare", "user", 22)
    assert "single-threaded" in err["hint"]


def test_mount_tmpfs_with_parsed_oci_options_in_a_private_namespace(tmp_path):
    target = str(tmp_path)

    def child():
        private_mount_ns()
        flags, propagation, data = kernel.parse_mount_options(
            ["nosuid", "nodev", "noexec", "ro", "size=1m", "mode=750", "private"])
        kernel.mount("tmpfs", target, "tmpfs", flags, data)
        kernel.mount(None, target, None, propagation)
        return mountinfo_entry(target), propagation

    fields, propagation = in_child(child)
    assert propagation == kernel.MS_PRIVATE
    assert fields is not None
    options = set(fields[5].split(","))
    assert {"ro", "nosuid", "nodev", "noexec"} <= options
    sep = fields.index("-")
    assert fields[sep + 1] == "tmpfs"
    assert {"size=1024k", "mode=750"} <= set(fields[sep + 3].split(","))
    assert not any(f.startswith("shared:") for f in fields[6:sep])  # private: no peer group
    assert mountinfo_entry(target) is None  # never visible to the host


def test_pivot_root_into_a_tmpfs(tmp_path):
    new_root = str(tmp_path / "root")
    os.mkdir(new_root)

    def child():
        private_mount_ns()
        kernel.mount("tmpfs", new_root, "tmpfs", 0, "size=1m")
        os.mkdir(os.path.join(new_root, "old"))
        os.mkdir(os.path.join(new_root, "etc"))
        os.chdir(new_root)
        kernel.pivot_root(".", "old")
        os.chdir("/")
        listing = sorted(os.listdir("/"))
        kernel.umount("/old", kernel.MNT_DETACH)
        return os.getcwd(), listing, os.listdir("/old")

    cwd, listing, old = in_child(child)
    assert cwd == "/"
    assert listing == ["etc", "old"]
    assert old == []  # the host's root is gone from the container's view
    assert os.listdir(new_root) == []  # and the tmpfs was never on the host


# ---------------------------------------------------------------- errors keep errno, op and path

def test_setns_with_a_bad_fd_is_ebadf():
    err = in_child(lambda: error_fields(lambda: kernel.setns(999_999)))
    assert (err["op"], err["path"], err["errno"]) == ("setns", "fd 999999", 9)
    assert "bad file descriptor" in err["message"]


def test_setns_with_a_missing_path_is_enoent():
    err = in_child(lambda: error_fields(lambda: kernel.setns("/proc/999999999/ns/net")))
    assert (err["op"], err["errno"]) == ("open namespace", 2)
    assert err["path"] == "/proc/999999999/ns/net"


def test_pivot_root_below_a_mount_point_is_einval(tmp_path):
    mnt = str(tmp_path)
    new_root = os.path.join(mnt, "not-a-mount")

    def child():
        private_mount_ns()
        kernel.mount("tmpfs", mnt, "tmpfs", 0, "size=1m")
        os.makedirs(os.path.join(new_root, "old"))
        return error_fields(lambda: kernel.pivot_root(new_root, os.path.join(new_root, "old")))

    err = in_child(child)
    assert (err["op"], err["path"], err["errno"]) == ("pivot_root", new_root, 22)  # EINVAL
    assert "mount point" in err["hint"]


def test_pivot_root_onto_a_directory_of_the_root_mount_is_ebusy(tmp_path):
    # The kernel checks "same mount as /" before "is a mount point".
    new_root = tmp_path / "on-the-root-fs"
    (new_root / "old").mkdir(parents=True)
    if os.stat(new_root).st_dev != os.stat("/").st_dev:
        pytest.skip("the temporary directory is not on the root file system here")

    def child():
        private_mount_ns()
        return error_fields(lambda: kernel.pivot_root(new_root, new_root / "old"))

    err = in_child(child)
    assert (err["op"], err["path"], err["errno"]) == ("pivot_root", str(new_root), 16)  # EBUSY
    assert "bind-mount" in err["hint"]


# ---------------------------------------------------------------- prctl

def test_no_new_privs_reads_back_in_the_child():
    def child():
        before = kernel.get_no_new_privs()
        kernel.set_no_new_privs()
        with open("/proc/self/status") as f:
            status = dict(line.split(":\t", 1) for line in f if ":\t" in line)
        return before, kernel.get_no_new_privs(), status["NoNewPrivs"].strip()

    assert in_child(child) == (False, True, "1")


def test_process_attributes_read_back():
    def child():
        kernel.set_name("sandbox-init-of-a-very-long-name")
        kernel.set_pdeathsig(signal.SIGKILL)
        kernel.set_child_subreaper()
        kernel.set_keepcaps(True)
        with open("/proc/self/comm") as f:
            comm = f.read().strip()
        return (kernel.get_name(), comm, kernel.get_pdeathsig(), kernel.is_child_subreaper(),
                kernel.get_keepcaps())

    assert in_child(child) == ("sandbox-init-of", "sandbox-init-of", signal.SIGKILL, True, True)


# ---------------------------------------------------------------- capabilities

def test_capbset_drop_removes_net_raw_from_the_bounding_set():
    if not kernel.capbset_read("CAP_NET_RAW"):
        pytest.skip("CAP_NET_RAW is not in this host's bounding set")

    def child():
        kernel.capbset_drop("CAP_NET_RAW")
        return kernel.capbset_read("CAP_NET_RAW"), "CAP_NET_RAW" in kernel.host_bounding_set()

    assert in_child(child) == (False, False)
    assert kernel.capbset_read("CAP_NET_RAW")


def test_bounding_set_matches_capbset_read():
    bounding = kernel.host_bounding_set()
    for name, bit in kernel.CAPS.items():
        if bit <= kernel.last_cap():
            assert kernel.capbset_read(bit) == (name in bounding), name


def test_capset_without_cap_chown_makes_chown_fail(tmp_path):
    path = tmp_path / "owned-by-root"
    path.write_text("x")

    def child():
        effective, permitted, inheritable = kernel.capget()
        chown = 1 << kernel.CAPS["CAP_CHOWN"]
        kernel.capset(effective & ~chown, permitted & ~chown, inheritable)
        try:
            os.chown(path, 1000, 1000)
        except PermissionError as e:
            return e.errno, kernel.capget()
        return None, kernel.capget()

    err, (effective, permitted, _) = in_child(child)
    assert err == 1  # EPERM
    assert "CAP_CHOWN" not in kernel.caps_from_mask(effective | permitted)
    assert os.stat(path).st_uid == 0


def test_capset_cannot_grow_permitted():
    def child():
        effective, permitted, inheritable = kernel.capget()
        chown = 1 << kernel.CAPS["CAP_CHOWN"]
        kernel.capset(effective & ~chown, permitted & ~chown, inheritable)
        return error_fields(lambda: kernel.capset(effective, permitted, inheritable))

    err = in_child(child)
    assert (err["op"], err["errno"]) == ("capset", 1)
    assert "only drop" in err["hint"]


def test_ambient_capability_needs_inheritable_then_raises():
    def child():
        effective, permitted, inheritable = kernel.capget()
        refused = error_fields(lambda: kernel.cap_ambient_raise("CAP_NET_BIND_SERVICE"))
        bit = 1 << kernel.CAPS["CAP_NET_BIND_SERVICE"]
        kernel.capset(effective, permitted, inheritable | bit)
        kernel.cap_ambient_raise("CAP_NET_BIND_SERVICE")
        raised = kernel.cap_ambient_is_set("CAP_NET_BIND_SERVICE")
        kernel.cap_ambient_clear_all()
        return refused["errno"], raised, kernel.cap_ambient_is_set("CAP_NET_BIND_SERVICE")

    assert in_child(child) == (1, True, False)


def test_switching_user_and_groups():
    def child():
        kernel.setgroups([1234, 5678])
        kernel.setresgid(1000, 1000, 1000)
        kernel.setresuid(1000, 1000, 1000)
        back = error_fields(lambda: kernel.setresuid(0, 0, 0))
        return sorted(os.getgroups()), os.getresgid(), os.getresuid(), back["errno"], back["op"]

    assert in_child(child) == ([1234, 5678], (1000, 1000, 1000), (1000, 1000, 1000), 1, "setresuid")


def test_mknod_makes_a_char_device_and_keeps_errno(tmp_path):
    path = str(tmp_path / "null")

    def child():
        kernel.mknod(path, stat.S_IFCHR | 0o666, 1, 3)
        st = os.stat(path)
        again = error_fields(lambda: kernel.mknod(path, stat.S_IFCHR | 0o666, 1, 3))
        return stat.S_ISCHR(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev), again

    is_chr, major, minor, again = in_child(child)
    assert (is_chr, major, minor) == (True, 1, 3)
    assert (again["op"], again["path"], again["errno"]) == ("mknod", path, 17)


# ---------------------------------------------------------------- pidfds

def test_pidfd_send_signal_kills_a_child():
    pid = os.fork()
    if pid == 0:
        try:
            while True:
                time.sleep(60)
        finally:
            os._exit(0)
    pidfd = kernel.pidfd_open(pid)
    try:
        kernel.pidfd_send_signal(pidfd, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        with pytest.raises(KernelError) as info:
            kernel.pidfd_send_signal(pidfd, signal.SIGKILL)
        assert info.value.errno == 3 and info.value.op == "pidfd_send_signal"  # ESRCH
    finally:
        os.close(pidfd)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def test_pidfd_open_of_a_missing_process_is_esrch():
    with pytest.raises(KernelError) as info:
        kernel.pidfd_open(999_999_999)
    assert (info.value.op, info.value.errno) == ("pidfd_open", 3)


# ---------------------------------------------------------------- seccomp

@requires_seccomp
def test_seccomp_errno_rule_blocks_mkdir_only_in_the_child(tmp_path):
    def child():
        f = kernel.SeccompFilter("SCMP_ACT_ALLOW")
        f.add_arch("SCMP_ARCH_X86_64")
        f.add_arch("SCMP_ARCH_X86")
        f.add_arch("SCMP_ARCH_X32")
        for name in ("mkdir", "mkdirat"):
            f.add_rule("SCMP_ACT_ERRNO", name, errno_ret=1)
        f.add_rule("SCMP_ACT_ERRNO", "definitely_not_a_syscall")
        f.load()
        try:
            os.mkdir(tmp_path / "blocked")
        except OSError as e:
            return e.errno, f.skipped
        return None, f.skipped

    err, skipped = in_child(child)
    assert err == 1  # EPERM, from the filter
    assert skipped == ["definitely_not_a_syscall"]
    os.mkdir(tmp_path / "allowed")  # the test process has no filter


@requires_seccomp
def test_seccomp_argument_comparison():
    def child():
        f = kernel.SeccompFilter("SCMP_ACT_ALLOW")
        f.add_rule("SCMP_ACT_ERRNO(13)", "write", [(0, "SCMP_CMP_EQ", 99, 0)])
        _, w = os.pipe()
        os.dup2(w, 99)
        f.load()
        try:
            os.write(99, b"x")
            blocked = None
        except OSError as e:
            blocked = e.errno
        return blocked, os.write(w, b"y")

    assert in_child(child) == (13, 1)  # EACCES on fd 99, other fds unaffected


@requires_seccomp
def test_seccomp_kill_process_action():
    def child():
        f = kernel.SeccompFilter("SCMP_ACT_ALLOW")
        f.add_rule("SCMP_ACT_KILL_PROCESS", "getppid")
        f.load()
        os.getppid()
        return "survived"

    result, status = run_forked(child)
    assert result is None
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS
