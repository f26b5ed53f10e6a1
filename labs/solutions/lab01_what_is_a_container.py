"""Lab 01, what a container is: one solution per exercise (see labs/solutions/__init__.py)."""

SOLUTIONS = {
    "kill-from-host": (
        "victim_pid = victim.reload().pid      # or read it from %docker top victim-{run}\n"
        "!kill -KILL {victim_pid}"
    ),
    "hostname": "%docker run -d --name named-{run} --hostname lab-box busybox sleep 3600",
    "memory-limit": "%docker run --name hungry-{run} --memory 16m busybox sh -c 'head -c 64m /dev/zero | tail'",
}
