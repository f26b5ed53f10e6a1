"""The three privilege modes side by side: root, rootless, and no namespaces (Binder).

    .venv/bin/python benchmarks/bench_modes.py     (or: make bench; as root)

One small measuring script (``INNER`` below) runs three times on the same
machine, each time in a fresh private store with busybox bootstrapped from the
host:

* **root**: as this process's user (root), the engine as it runs for the tests;
* **rootless**: as an unprivileged user this script makes (``useradd``, a
  subordinate range in /etc/subuid and /etc/subgid, as Debian gives a new
  user), with Debian's /usr/bin/python3 and this checkout on PYTHONPATH, so the
  engine finds the user namespace mode by itself;
* **no namespaces**: as uid 1000 inside a container of our own engine with
  Docker's default seccomp profile and capabilities (what Binder gives a
  notebook), so unshare(2) is refused and containers run through proot on the
  vfs driver -- the set-up of ``tests/integration/test_binder_mode.py``.

Each measures a warm ``Engine.run("busybox", ["true"], remove=True,
network="none")`` (median of 30 after 3 to warm up; the host's network where
namespaces are refused) and a cold three-step
build (COPY, RUN, CMD after FROM, ``no_cache``; median of 5), and a cold
``sandbox run --rm busybox true`` as a new process (median of 10, the
supervisor already running).  Beside them,
``podman run --rm --network none busybox true`` as the same unprivileged user
when podman is installed (its image loaded from our ``save`` of busybox).

Everything made is removed at the end: the user, their ranges, their
processes, the stores.  Nothing here asserts a time; the costs are printed as
ratios to root mode.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SYSTEM_PYTHON = "/usr/bin/python3"

INNER = r"""
import json, os, statistics, sys, tempfile, time
from pathlib import Path
from sandbox import Engine
from sandbox.hostinfo import mode

work = Path(sys.argv[1])
engine = Engine(work / "store")
engine.images.bootstrap("busybox")
# where namespaces are refused the host's network is the only one (and the one Binder gives)
net = {} if mode().name == "no-namespaces" else {"network": "none"}
ctx = work / "ctx"
ctx.mkdir(exist_ok=True)
(ctx / "f.txt").write_text("hello\n")
(ctx / "Dockerfile").write_text('FROM busybox\nCOPY f.txt /f.txt\nRUN echo built > /built\nCMD ["cat", "/f.txt"]\n')
for _ in range(3):
    engine.run("busybox", ["true"], remove=True, **net)
runs = []
for _ in range(30):
    t = time.perf_counter()
    result = engine.run("busybox", ["true"], remove=True, **net)
    runs.append(time.perf_counter() - t)
    assert result.exit_code == 0, result
import subprocess
env = dict(os.environ, SANDBOX_ROOT=str(work / "store"))
env.pop("PYTHONDONTWRITEBYTECODE", None)
argv = [sys.executable, "-m", "sandbox", "run", "--rm"] + [f"--network={v}" for v in net.values()] + ["busybox", "true"]
colds = []
for _ in range(11):
    t = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    colds.append(time.perf_counter() - t)
builds = []
for _ in range(5):
    t = time.perf_counter()
    engine.build(ctx, tags=["m"], no_cache=True)
    builds.append(time.perf_counter() - t)
engine.supervisor.call("shutdown")
print("RESULT " + json.dumps({"mode": mode().name, "run_ms": statistics.median(runs) * 1000,
                              "cold_ms": statistics.median(colds[1:]) * 1000,
                              "build_ms": statistics.median(builds) * 1000}))
"""


def parse(out: str) -> dict | None:
    for line in out.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return None


def system_python_matches() -> bool:
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return False
    r = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"],
                       capture_output=True, text=True)
    return r.stdout.strip() == str(sys.version_info[:2])


def env_for(home: str, user: str) -> dict[str, str]:
    return {"HOME": home, "USER": user, "LOGNAME": user, "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
            "PYTHONPATH": f"{REPO}:{sysconfig.get_paths()['purelib']}", "LANG": "C.UTF-8"}


def in_root_mode(tmp: Path) -> dict | None:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    r = subprocess.run([sys.executable, "-c", INNER, str(tmp / "root")], capture_output=True, text=True,
                       env=env, timeout=600)
    return parse(r.stdout) or print("root mode failed:", r.stderr[-2000:])


class TestUser:
    """An unprivileged user with a subordinate range, removed again with all it ran and made."""

    def __enter__(self) -> TestUser:
        self.name = "sbbm" + secrets.token_hex(3)
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", self.name], check=True)
        self.pw = pwd.getpwnam(self.name)
        if not any(line.startswith(self.name + ":") for line in Path("/etc/subuid").read_text().splitlines()):
            subprocess.run(["usermod", "--add-subuids", "500000-565535", "--add-subgids", "500000-565535",
                            self.name], check=True)
        return self

    def run(self, argv: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
        pw = self.pw

        def become() -> None:
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
        return subprocess.run(argv, env=env_for(pw.pw_dir, self.name), cwd=pw.pw_dir, preexec_fn=become,
                              capture_output=True, text=True, timeout=timeout)

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["pkill", "-KILL", "-u", self.name], capture_output=True)
        deadline = time.monotonic() + 10
        while subprocess.run(["pgrep", "-u", self.name], capture_output=True).returncode == 0 \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        # the user's store holds files of its subordinate uids: remove them as root
        from sandbox.image.store import remove_tree
        remove_tree(Path(self.pw.pw_dir))
        subprocess.run(["userdel", "-r", "-f", self.name], capture_output=True)
        for d in ("rootless", "slirp"):
            shutil.rmtree(f"/tmp/sandbox-{d}-{self.pw.pw_uid}", ignore_errors=True)


def in_rootless_mode(user: TestUser) -> dict | None:
    work = Path(user.pw.pw_dir) / "bench"
    r = user.run([SYSTEM_PYTHON, "-c", INNER, str(work)])
    found = parse(r.stdout)
    if found is None:
        log = work / "store" / "supervisor.log"
        print("rootless mode failed:", r.stderr[-2000:], log.read_text()[-2000:] if log.exists() else "")
    return found


def podman_rootless(user: TestUser, archive: Path) -> float | None:
    if not shutil.which("podman"):
        return None
    shutil.copy(archive, Path(user.pw.pw_dir) / "busybox.tar")
    os.chown(Path(user.pw.pw_dir) / "busybox.tar", user.pw.pw_uid, user.pw.pw_gid)
    if user.run(["podman", "load", "-i", "busybox.tar"]).returncode != 0:
        return None
    argv = ["podman", "run", "--rm", "--network", "none", "--ulimit", "nofile=1024:1024",
            "--ulimit", "nproc=1024:1024", "busybox", "true"]
    first = user.run(argv)
    if first.returncode != 0:
        print("podman run (rootless) failed:", first.stderr.strip()[-500:])
        return None
    samples = []
    for _ in range(15):
        t = time.perf_counter()
        user.run(argv)
        samples.append(time.perf_counter() - t)
    user.run(["podman", "system", "reset", "-f"])
    samples.sort()
    return samples[len(samples) // 2] * 1000


def in_no_namespaces_mode(tmp: Path) -> dict | None:
    """INNER as uid 1000 in one of our containers (Docker's seccomp profile): what Binder gives."""
    if not shutil.which("proot"):
        print("no-namespaces mode: skipped (needs proot: apt install proot)")
        return None
    from sandbox import Engine
    engine = Engine(tmp / "outer")
    engine.images.bootstrap("busybox")
    home = tmp / "home"
    home.mkdir()
    os.chown(home, 1000, 1000)
    (home / "inner.py").write_text(INNER)
    purelib = sysconfig.get_paths()["purelib"]
    try:
        out = engine.containers.run(
            "busybox", [SYSTEM_PYTHON, "/home/jovyan/inner.py", "/home/jovyan/bench"], remove=True,
            user="1000:1000", working_dir="/home/jovyan",
            environment={"HOME": "/home/jovyan", "PYTHONPATH": f"{REPO}:{purelib}", "LANG": "C.UTF-8"},
            tmpfs={"/tmp": "rw,exec,mode=1777"},
            volumes={"/usr": {"bind": "/usr", "mode": "ro"}, "/lib": {"bind": "/lib", "mode": "ro"},
                     "/lib64": {"bind": "/lib64", "mode": "ro"}, str(REPO): {"bind": str(REPO), "mode": "ro"},
                     str(home): {"bind": "/home/jovyan", "mode": "rw"}}).decode()
    finally:
        engine.supervisor.call("shutdown")
    return parse(out) or print("no-namespaces mode failed:", out[-2000:])


def main() -> int:
    if os.geteuid() != 0:
        print("bench_modes: skipped (run as root: it makes a user and a Binder-like container)")
        return 0
    with tempfile.TemporaryDirectory(prefix="sbx-modes-") as tmpname:
        tmp = Path(tmpname)
        rows: dict[str, dict | None] = {"root": in_root_mode(tmp)}
        podman = None
        if system_python_matches():
            from sandbox import Engine
            archive = tmp / "busybox.tar"
            e = Engine(tmp / "save")
            e.images.bootstrap("busybox")
            with open(archive, "wb") as f:
                e.images.save(["busybox"], f)
            with TestUser() as user:
                rows["rootless"] = in_rootless_mode(user)
                podman = podman_rootless(user, archive)
            rows["no namespaces (Binder)"] = in_no_namespaces_mode(tmp)
        else:
            print(f"rootless and no-namespaces rows: skipped (needs {SYSTEM_PYTHON} of this Python's version)")
        from sandbox.image.store import remove_tree
        remove_tree(tmp)
        tmp.mkdir()
    base = rows.get("root")
    print(f"\n{'mode':<26}{'detected':<16}{'warm run':>10}{'vs root':>9}{'cold run':>10}{'vs root':>9}"
          f"{'3-step build':>14}{'vs root':>9}")
    for name, row in rows.items():
        if row is None:
            print(f"{name:<26}{'failed or skipped'}")
            continue
        rr = f"{row['run_ms'] / base['run_ms']:.2f}x" if base else ""
        cr = f"{row['cold_ms'] / base['cold_ms']:.2f}x" if base else ""
        br = f"{row['build_ms'] / base['build_ms']:.2f}x" if base else ""
        print(f"{name:<26}{row['mode']:<16}{row['run_ms']:>8.1f}ms{rr:>9}{row['cold_ms']:>8.1f}ms{cr:>9}"
              f"{row['build_ms']:>12.0f}ms{br:>9}")
    if podman is not None:
        ratio = f"{podman / base['cold_ms']:.2f}x" if base else ""
        print(f"{'podman run (rootless)':<26}{'':<16}{'':>19}{podman:>8.1f}ms{ratio:>9}   (a new process, as cold)")
    else:
        print("podman run (rootless): skipped (podman not installed, or it failed here)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
