"""Lab 5, volumes and mounts: one solution per exercise (see labs/solutions/__init__.py)."""

SOLUTIONS = {
    "named-volume": (
        "%docker volume create ex1-{run}\n"
        "%docker run --rm -v ex1-{run}:/data busybox sh -c 'echo hello volume > /data/greeting.txt'"
    ),
    "bind-mount": (
        "%docker run --rm -u 1234 -v {host_dir}:/shared busybox sh -c 'ls /shared > /shared/report.txt'"
    ),
    "read-only": "%docker run -d --name ex3-{run} --read-only --tmpfs /tmp busybox sleep 600",
    "dockerfile-volume": (
        "%%dockerfile -t ex4-{run}\n"
        "FROM busybox\n"
        "RUN mkdir /cache && touch /cache/ready\n"
        "VOLUME /cache"
    ),
}
