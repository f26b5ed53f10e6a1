"""Everyday verbs as new processes, side by side with the docker CLI, as ratios.

    .venv/bin/python benchmarks/bench_cli.py     (or: make bench)

A student types ``sandbox ps -a``, ``sandbox images``, ``sandbox inspect
busybox`` and ``sandbox version`` in a terminal: each is a new process, and
Docker's CLI (a Go binary talking to a running dockerd) answers each in about
ten milliseconds.  Measured here, in one run, interleaved round by round:

* ours: the installed ``sandbox`` console script (``.venv/bin/sandbox``, as
  pip made it) on a private store with busybox bootstrapped from the host and
  one exited container, its supervisor running (as it is after the first
  command);
* theirs: ``/usr/bin/docker`` (Debian's 20.10 client) against the dockerd of
  ``common.docker_daemon()`` with the same busybox loaded (our
  ``images.save`` archive, ``docker load``) and one exited container; the
  goal lines say skipped when no daemon can be had;
* the bare interpreter, for context: ``python -c pass`` and ``python -I -S
  -c pass`` (no site, no venv);
* the modules each of our verbs imports (``-X importtime``).

Run it with .pyc caching on (PYTHONDONTWRITEBYTECODE unset, as
``busybox_store`` does): a cold command that recompiles every module
measures the compiler.  Nothing here asserts a time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import busybox_store, docker_daemon, goal, median_ms, timed  # noqa: E402

ROUNDS = 30
DOCKER = "/usr/bin/docker"
VERBS = [["ps", "-a"], ["images"], ["inspect", "busybox"], ["version"]]
#: 3x the docker CLI's time, the issue's goal for each verb.
LIMIT = 3.0


def sandbox_command() -> list[str]:
    """The console script beside this interpreter (what a user runs), else ``python -m sandbox``."""
    script = Path(sys.executable).with_name("sandbox")
    return [str(script)] if script.exists() else [sys.executable, "-m", "sandbox"]


def module_count(argv: list[str], env: dict[str, str]) -> int:
    """How many modules ``argv`` (a Python script and its arguments) imports, by ``-X importtime``."""
    script = argv[0] if argv[0] != sys.executable else None
    cmd = [sys.executable, "-X", "importtime", *([script] if script else []), *argv[1:]]
    r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
    return sum(1 for line in r.stderr.splitlines() if line.startswith("import time:") and "|" in line
               and not line.rstrip().endswith("imported package"))


def docker_side(engine, tmp: Path, denv: dict[str, str]) -> bool:
    """busybox (ours, saved and loaded) and one exited container in the docker daemon."""
    saved = tmp / "busybox.tar"
    with open(saved, "wb") as f:
        engine.images.save(["busybox"], f)
    subprocess.run([DOCKER, "load", "-i", str(saved)], env=denv, capture_output=True)
    subprocess.run([DOCKER, "rm", "-f", "bench-cli-exited"], env=denv, capture_output=True)
    made = subprocess.run([DOCKER, "run", "--network", "none", "--name", "bench-cli-exited", "busybox", "true"],
                          env=denv, capture_output=True)
    return made.returncode == 0


def main() -> int:
    ours_cmd = sandbox_command()
    times: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmpdir:
        tmp = Path(tmpdir)
        engine, env = busybox_store(tmp)
        try:
            engine.containers.run("busybox", ["true"], detach=True, name="bench-cli-exited").wait()
            with docker_daemon() as denv:
                docker = denv is not None and os.path.exists(DOCKER) and docker_side(engine, tmp, denv)
                for verb in VERBS:
                    timed(ours_cmd + verb, env)                 # the first run writes the .pyc files
                    counts[" ".join(verb)] = module_count(ours_cmd + verb, env)
                    if docker:
                        timed([DOCKER, *verb], denv)
                for _ in range(ROUNDS):
                    for verb in VERBS:
                        name = " ".join(verb)
                        times.setdefault(f"sandbox {name}", []).append(timed(ours_cmd + verb, env))
                        if docker:
                            times.setdefault(f"docker {name}", []).append(timed([DOCKER, *verb], denv))
                    for label, argv in (("python -c pass", [sys.executable, "-c", "pass"]),
                                        ("python -I -S -c pass", [sys.executable, "-I", "-S", "-c", "pass"])):
                        times.setdefault(label, []).append(timed(argv, env))
                if docker:
                    subprocess.run([DOCKER, "rm", "-f", "bench-cli-exited"], env=denv, capture_output=True)
        finally:
            from tests.integration.container_env import clean_engine
            clean_engine(engine)

    medians = {k: median_ms(v) for k, v in times.items()}
    print(f"{'measure (median of ' + str(ROUNDS) + ')':34} {'ms':>8} {'min ms':>8} {'modules':>8}")
    for key, ms in medians.items():
        verb = key.split(" ", 1)[1] if key.startswith("sandbox ") else None
        shown = str(counts[verb]) if verb in counts else ""
        print(f"{key:34} {ms:8.1f} {min(times[key]) * 1000:8.1f} {shown:>8}")
    print()
    for verb in VERBS:
        name = " ".join(verb)
        ours, theirs = medians[f"sandbox {name}"], medians.get(f"docker {name}")
        detail = f"{ours:.1f} ms vs {theirs:.1f} ms, {counts[name]} modules" if theirs else \
            f"{ours:.1f} ms, {counts[name]} modules; no docker daemon"
        goal(f"cold `sandbox {name}` / `docker {name}`", ours / theirs if theirs else None, LIMIT, detail)
    return 0


if __name__ == "__main__":
    sys.exit(main())
