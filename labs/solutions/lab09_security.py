"""Lab 09, security: one solution per exercise (see labs/solutions/__init__.py)."""

SOLUTIONS = {
    "no-chown": "%docker run -d --name ex1-{run} --cap-drop CHOWN busybox sleep 3600",
    "userns": "%docker run -d --name ex2-{run} --security-opt seccomp=unconfined busybox sleep 3600",
    "low-port": (
        "%docker run -d --name ex3-{run} --user 1000 --sysctl net.ipv4.ip_unprivileged_port_start=80 "
        "busybox httpd -f -p 80 -h /"
    ),
    "no-caps": "%docker run -d --name ex4-{run} --cap-drop ALL busybox httpd -f -p 8080 -h /",
}
