"""Lab 06, namespaces: one solution per exercise (see labs/solutions/__init__.py)."""

SOLUTIONS = {
    "userns-file": (
        "!setpriv --reuid={lab_uid} --regid={lab_uid} --clear-groups "
        "unshare --user --map-root-user sh -c 'id -u > {target}'"
    ),
    "rename-box": "!nsenter -t {box_pid} -u hostname renamed-{run}",
    "share-net": "%docker run -d --name side-{run} --network container:ns06-{run} busybox sleep 3600",
    "share-ipc": "%docker run -d --name ipc-b-{run} --ipc container:ipc-a-{run} busybox sleep 3600",
}
