"""The pure tables and parsers of sandbox.kernel: no root, no system call changes anything."""

from __future__ import annotations

import ctypes
import errno

import pytest

from sandbox import kernel
from sandbox.errors import KernelError
from sandbox.kernel import seccomp

# ---------------------------------------------------------------- namespaces

def test_namespaces_cover_the_oci_types_with_distinct_flags():
    oci = {"mount", "uts", "ipc", "pid", "network", "cgroup", "user", "time"}
    assert set(kernel.NAMESPACES) == oci == set(kernel.NAMESPACE_FILES)
    flags = list(kernel.NAMESPACES.values())
    assert len(set(flags)) == len(flags)
    assert all(f & (f - 1) == 0 for f in flags)  # one bit each
    assert kernel.NAMESPACES["network"] == kernel.CLONE_NEWNET == 0x40000000
    assert kernel.NAMESPACES["mount"] == kernel.CLONE_NEWNS == 0x00020000
    assert kernel.NAMESPACE_FILES["mount"] == "mnt" and kernel.NAMESPACE_FILES["network"] == "net"


def test_ns_inode_accepts_oci_and_proc_names():
    assert kernel.ns_inode("self", "network") == kernel.ns_inode("self", "net") > 0


def test_ns_inode_of_missing_process_is_a_kernel_error():
    with pytest.raises(KernelError) as info:
        kernel.ns_inode(2**30, "uts")
    assert info.value.errno == errno.ENOENT and info.value.op == "stat"
    assert info.value.path == f"/proc/{2**30}/ns/uts"


# ---------------------------------------------------------------- syscall numbers

@pytest.mark.parametrize("machine, number", [
    ("x86_64", 155), ("aarch64", 41), ("armv7l", 218), ("ppc64le", 203), ("s390x", 217), ("riscv64", 41),
])
def test_pivot_root_syscall_number_per_arch(machine, number):
    assert kernel.syscall_number("pivot_root", machine) == number


def test_pidfd_syscalls_share_one_number_everywhere():
    for machine in kernel.SYSCALL_NUMBERS["pivot_root"]:
        assert kernel.syscall_number("pidfd_open", machine) == 434
        assert kernel.syscall_number("pidfd_send_signal", machine) == 424


def test_unknown_arch_is_enosys_with_a_hint():
    with pytest.raises(KernelError) as info:
        kernel.syscall_number("pivot_root", "vax")
    assert info.value.errno == errno.ENOSYS and "x86_64" in info.value.hint


# ---------------------------------------------------------------- mount options

def test_mount_flag_values_match_sys_mount_h():
    assert (kernel.MS_RDONLY, kernel.MS_NOSUID, kernel.MS_NODEV, kernel.MS_NOEXEC) == (1, 2, 4, 8)
    assert (kernel.MS_SYNCHRONOUS, kernel.MS_REMOUNT, kernel.MS_MANDLOCK, kernel.MS_DIRSYNC) == (16, 32, 64, 128)
    assert (kernel.MS_NOATIME, kernel.MS_NODIRATIME, kernel.MS_BIND, kernel.MS_MOVE) == (1024, 2048, 4096, 8192)
    assert (kernel.MS_REC, kernel.MS_SILENT) == (16384, 32768)
    assert (kernel.MS_UNBINDABLE, kernel.MS_PRIVATE, kernel.MS_SLAVE, kernel.MS_SHARED) == (
        1 << 17, 1 << 18, 1 << 19, 1 << 20)
    assert (kernel.MS_RELATIME, kernel.MS_STRICTATIME) == (1 << 21, 1 << 24)


OCI_OPTIONS = ["ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec", "bind", "rbind",
               "private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable",
               "runbindable", "relatime", "norelatime", "strictatime", "noatime", "nodiratime",
               "sync", "dirsync", "remount", "mand", "nomand"]


def test_every_oci_option_is_in_the_table():
    assert set(OCI_OPTIONS) <= set(kernel.MOUNT_OPTIONS)


def test_options_either_set_clear_or_propagate():
    for name, (set_flags, clear_flags, prop) in kernel.MOUNT_OPTIONS.items():
        assert not set_flags & clear_flags, name
        assert not (set_flags or clear_flags) or not prop, name
        assert not prop & ~(kernel.MS_PROPAGATION | kernel.MS_REC), name
        assert not (set_flags | clear_flags) & kernel.MS_PROPAGATION, name


def test_option_pairs_undo_each_other():
    for on, off in [("ro", "rw"), ("nosuid", "suid"), ("nodev", "dev"), ("noexec", "exec"),
                    ("mand", "nomand"), ("relatime", "norelatime")]:
        assert kernel.parse_mount_options([on, off])[0] == 0, (on, off)
        assert kernel.parse_mount_options([off, on])[0] != 0, (off, on)


def test_parse_typical_oci_mounts():
    # Docker's /proc, /dev and a read-only bind mount, as in an OCI config.json.
    assert kernel.parse_mount_options(["nosuid", "noexec", "nodev"]) == (
        kernel.MS_NOSUID | kernel.MS_NOEXEC | kernel.MS_NODEV, 0, "")
    assert kernel.parse_mount_options(["nosuid", "strictatime", "mode=755", "size=65536k"]) == (
        kernel.MS_NOSUID | kernel.MS_STRICTATIME, 0, "mode=755,size=65536k")
    assert kernel.parse_mount_options(["rbind", "ro", "rprivate"]) == (
        kernel.MS_BIND | kernel.MS_REC | kernel.MS_RDONLY, kernel.MS_PRIVATE | kernel.MS_REC, "")
    assert kernel.parse_mount_options([]) == (0, 0, "")


def test_last_propagation_option_wins():
    assert kernel.parse_mount_options(["rshared", "slave"])[1] == kernel.MS_SLAVE


# ---------------------------------------------------------------- capabilities

def test_caps_are_numbered_0_to_40_without_gaps():
    assert sorted(kernel.CAPS.values()) == list(range(41))
    assert kernel.CAPS["CAP_CHOWN"] == 0 and kernel.CAPS["CAP_NET_RAW"] == 13
    assert kernel.CAPS["CAP_SYS_ADMIN"] == 21 and kernel.CAPS["CAP_SYS_RESOURCE"] == 24
    assert kernel.CAPS["CAP_CHECKPOINT_RESTORE"] == 40


def test_caps_table_knows_every_capability_of_this_kernel():
    assert kernel.last_cap() <= max(kernel.CAPS.values())


def test_cap_names_and_masks_round_trip():
    assert kernel.cap_number("NET_RAW") == kernel.cap_number("cap_net_raw") == 13
    assert kernel.caps_to_mask(["CAP_CHOWN", 13]) == 1 | 1 << 13
    assert kernel.caps_from_mask(kernel.caps_to_mask(kernel.CAPS)) == set(kernel.CAPS)
    with pytest.raises(KernelError) as info:
        kernel.cap_number("CAP_FLY")
    assert info.value.errno == errno.EINVAL


def test_host_bounding_set_parses_capbnd():
    status = "Name:\tx\nCapBnd:\t000001fffeffffff\nCapAmb:\t0000000000000000\n"
    assert kernel.host_bounding_set(status) == set(kernel.CAPS) - {"CAP_SYS_RESOURCE"}
    assert kernel.host_bounding_set() <= set(kernel.CAPS)


def test_capget_reads_this_process():
    effective, permitted, _ = kernel.capget()
    assert effective & ~permitted == 0
    assert kernel.caps_from_mask(permitted) <= kernel.host_bounding_set()


# ---------------------------------------------------------------- seccomp tables

def test_seccomp_action_values():
    assert kernel.seccomp_action("SCMP_ACT_ALLOW") == 0x7FFF0000
    assert kernel.seccomp_action("SCMP_ACT_ERRNO") == 0x00050000 | errno.EPERM
    assert kernel.seccomp_action("SCMP_ACT_ERRNO", errno.ENOSYS) == 0x00050000 | errno.ENOSYS
    assert kernel.seccomp_action("SCMP_ACT_ERRNO(38)") == 0x00050026
    assert kernel.seccomp_action("SCMP_ACT_KILL") == kernel.seccomp_action("SCMP_ACT_KILL_THREAD") == 0
    with pytest.raises(KernelError):
        kernel.seccomp_action("SCMP_ACT_MAYBE")


def test_scmp_arg_cmp_layout():
    # struct scmp_arg_cmp { unsigned int arg; enum scmp_compare op; scmp_datum_t datum_a, datum_b; }
    s = seccomp._ScmpArgCmp
    assert ctypes.sizeof(s) == 24
    assert (s.arg.offset, s.op.offset, s.datum_a.offset, s.datum_b.offset) == (0, 4, 8, 16)
    assert kernel.SECCOMP_OPS["SCMP_CMP_NE"] == 1 and kernel.SECCOMP_OPS["SCMP_CMP_MASKED_EQ"] == 7


def test_same_argument_compared_twice_becomes_separate_rules():
    one_each = [(0, "SCMP_CMP_EQ", 1, 0), (1, "SCMP_CMP_EQ", 2, 0)]
    assert seccomp._comparison_groups(one_each) == [one_each]
    twice = [(0, "SCMP_CMP_EQ", 1, 0), (0, "SCMP_CMP_EQ", 2, 0)]
    assert seccomp._comparison_groups(twice) == [[twice[0]], [twice[1]]]


@pytest.mark.skipif(not kernel.seccomp_available(), reason="requires libseccomp (apt install libseccomp2)")
def test_filter_records_unknown_syscalls_and_drops_default_rules():
    f = kernel.SeccompFilter("SCMP_ACT_ALLOW")
    f.add_rule("SCMP_ACT_ERRNO", "mkdir")
    f.add_rule("SCMP_ACT_ERRNO", "no_such_syscall_xyz")
    f.add_rule("SCMP_ACT_ALLOW", "getpid")
    f.add_arch("SCMP_ARCH_X86")
    assert f.skipped == ["no_such_syscall_xyz"]
    assert [name for _, name, _, _ in f.rules] == ["mkdir"]
    with pytest.raises(KernelError):
        f.add_arch("SCMP_ARCH_VAX")
    with pytest.raises(KernelError):
        f.add_rule("SCMP_ACT_ERRNO", "write", [(6, "SCMP_CMP_EQ", 1, 0)])
