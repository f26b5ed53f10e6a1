"""The rootless tier: the container and build tests run by an unprivileged user, in rootless mode.

Root mode is what the main run tests; a self-paced learner without sudo, and a
class whose students each have their own account, run the engine as a user in
a user namespace instead.  So that this path is tested with the same tests and
not only with its own, this tool:

1. makes a user for the run (``useradd``, a subordinate uid and gid range in
   /etc/subuid and /etc/subgid, as Debian gives a new user: Podman's sources);
2. runs pytest as that user, with Debian's /usr/bin/python3 and this checkout
   and the venv's packages on PYTHONPATH (the venv's own interpreter lives
   under /root here, which no user can read); the session joins the user's
   namespace first (tests/conftest.py), and tests that need what rootless
   mode has not got (a delegated cgroup for limits, the bridge network, root
   on the host) skip, saying which;
3. always removes the user again: their processes (the namespace holder
   among them), their home with the store (files of subordinate uids, so as
   root), their ranges, and pytest's and the engine's directories in /tmp,
   also when pytest fails or the tool is interrupted.

Exit status: pytest's, or 0 with the reason on one line when the tier cannot
run here (not root, no matching /usr/bin/python3, no newuidmap).

    python tools/rootless_tier.py                                 # the default selection below
    python tools/rootless_tier.py tests/integration/test_build.py -k cache
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = "/usr/bin/python3"
#: The container and build tests (the kernels' and views' too); root-only tiers (cgroups, networks,
#: the supervisor's fault injection on veths and cgroups, the API daemon) stay in the main run.
DEFAULT_SELECTION = ["tests/integration/test_containers.py", "tests/integration/test_container_paths.py",
                     "tests/integration/test_build.py", "tests/integration/test_build_paths.py",
                     "tests/integration/test_build_corpus.py", "tests/integration/test_vfs_driver.py",
                     "tests/integration/test_supervisor_kill.py",
                     "tests/integration/test_container_kernel_restart.py", "tests/integration/test_magics.py",
                     "tests/integration/test_notebook_layer.py", "tests/integration/test_overlay_layers.py",
                     "tests/integration/test_cli_images.py", "tests/integration/test_cli_cold.py",
                     "tests/integration/test_store_concurrency.py", "tests/integration/test_display.py",
                     "tests/integration/test_fuse_overlay.py", "tests/integration/test_containers_runc.py"]
#: A range far from the ones the tests and the classroom test give their users.
RANGE = "800000-865535"


def why_not() -> str | None:
    """Why the tier cannot run on this machine, or None."""
    if os.geteuid() != 0:
        return "the rootless tier makes a user, so it runs as root"
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"the rootless tier needs {SYSTEM_PYTHON} to run the checkout as another user"
    r = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"],
                       capture_output=True, text=True)
    if r.stdout.strip() != str(sys.version_info[:2]):
        return f"{SYSTEM_PYTHON} is not Python {sys.version_info[0]}.{sys.version_info[1]} (the venv's packages)"
    if not (shutil.which("newuidmap") and shutil.which("newgidmap")):
        return "the rootless tier needs newuidmap and newgidmap (apt install uidmap)"
    return None


def make_user() -> pwd.struct_passwd:
    name = "sbtier" + secrets.token_hex(3)
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], check=True)
    if not any(line.startswith(name + ":") for line in Path("/etc/subuid").read_text().splitlines()):
        subprocess.run(["usermod", "--add-subuids", RANGE, "--add-subgids", RANGE, name], check=True)
    return pwd.getpwnam(name)


def remove_user(pw: pwd.struct_passwd) -> None:
    """Everything the user ran and made, then the user and their ranges."""
    subprocess.run(["pkill", "-KILL", "-u", pw.pw_name], capture_output=True)
    deadline = time.monotonic() + 15
    while subprocess.run(["pgrep", "-u", pw.pw_name], capture_output=True).returncode == 0 \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    sys.path.insert(0, str(REPO))
    from sandbox.image.store import remove_tree   # detaches mounts below, then deletes as root
    for path in (Path(pw.pw_dir), Path(f"/tmp/pytest-of-{pw.pw_name}"),
                 Path(f"/tmp/sandbox-rootless-{pw.pw_uid}"), Path(f"/tmp/sandbox-slirp-{pw.pw_uid}")):
        if path.exists():
            remove_tree(path)
    subprocess.run(["userdel", "-r", "-f", pw.pw_name], capture_output=True)
    for path in ("/etc/subuid", "/etc/subgid"):   # userdel removes them; a line left by an old one too
        lines = Path(path).read_text().splitlines(keepends=True)
        kept = [line for line in lines if not line.startswith(pw.pw_name + ":")]
        if kept != lines:
            Path(path).write_text("".join(kept))


def run_pytest(pw: pwd.struct_passwd, args: list[str]) -> int:
    env = {"HOME": pw.pw_dir, "USER": pw.pw_name, "LOGNAME": pw.pw_name, "LANG": "C.UTF-8",
           "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
           "PYTHONPATH": f"{REPO}:{sysconfig.get_paths()['purelib']}", "SANDBOX_TEST_ROOTLESS_TIER": "1"}

    def become() -> None:
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    argv = [SYSTEM_PYTHON, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-ra", *args]
    print(f"rootless tier: as {pw.pw_name} (uid {pw.pw_uid}, subordinate range {RANGE}): {' '.join(args)}",
          flush=True)
    proc = subprocess.Popen(argv, env=env, cwd=REPO, preexec_fn=become)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        proc.wait()
        raise


#: Debian's udev makes /dev/fuse 0666 (a user mounts fuse-overlayfs with it); some VMs,
#: this project's among them, have it 0600.  The tier gives it Debian's mode for its run.
FUSE = Path("/dev/fuse")


def fuse_as_debian() -> int | None:
    """Make /dev/fuse 0666 for the run; the mode it had, to put back (None: nothing changed)."""
    try:
        mode = FUSE.stat().st_mode & 0o7777
    except OSError:
        return None
    if mode & 0o666 == 0o666:
        return None
    os.chmod(FUSE, mode | 0o666)
    return mode


def main(argv: list[str]) -> int:
    reason = why_not()
    if reason:
        print(f"rootless tier: skipped: {reason}")
        return 0
    pw = make_user()
    fuse_mode = fuse_as_debian()
    try:
        named = any(a.startswith("tests") or a.endswith(".py") for a in argv)
        return run_pytest(pw, argv if named else DEFAULT_SELECTION + argv)   # options alone: the default files
    finally:
        if fuse_mode is not None:
            os.chmod(FUSE, fuse_mode)
        remove_user(pw)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
