"""Lab 10, a container from scratch: one solution per exercise (see labs/solutions/__init__.py)."""

SOLUTIONS = {
    "fork-exec-wait": '''\
def run_program(argv):
    """Run argv as a child process, wait for it, return its exit code."""
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
''',
    "chroot": '''\
def enter_chroot(rootfs):
    """A step: make rootfs this process's /."""
    os.chroot(rootfs)
    os.chdir("/")
''',
    "pivot-root": '''\
def enter_pivot_root(rootfs):
    """A step: a new mount namespace whose root mount is rootfs; the host's / unmounted."""
    unshare(CLONE_NEWNS)
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount(rootfs, rootfs, None, MS_BIND | MS_REC)
    os.chdir(rootfs)
    os.makedirs("put_old", exist_ok=True)
    pivot_root(".", "put_old")
    os.chdir("/")
    umount2("/put_old", MNT_DETACH)
    os.rmdir("/put_old")
''',
    "namespaces": '''\
def new_namespaces(hostname):
    """A step: own hostname, own pids (this process becomes pid 1 after a fork), own network."""
    unshare(CLONE_NEWUTS | CLONE_NEWPID | CLONE_NEWNET)
    sethostname(hostname)
    child = os.fork()
    if child:
        wait_and_exit(child)
    mount("proc", "/proc", "proc")
''',
    "cgroup": '''\
def make_memory_cgroup(name, limit):
    """Make the cgroup `name` with a memory limit of `limit` bytes; return its directory."""
    path = hierarchy / name
    path.mkdir(exist_ok=True)
    (path / LIMIT_FILE).write_text(str(limit))
    swap = {"v1": ("memory.memsw.limit_in_bytes", limit), "v2": ("memory.swap.max", 0)}[version]
    if (path / swap[0]).exists():
        (path / swap[0]).write_text(str(swap[1]))
    return path

def join_cgroup(path):
    """A step: move this process into the cgroup at path."""
    (path / "cgroup.procs").write_text(str(os.getpid()))
''',
}
