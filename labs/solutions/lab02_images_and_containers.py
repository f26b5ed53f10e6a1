"""Lab 02, images and containers: one solution per exercise (see labs/solutions/__init__.py)."""

SOLUTIONS = {
    "create": "%docker create --name ex-created-{run} {tag}",
    "graceful": (
        "ex = %docker run -d --name ex-stop-{run} {tag}\n"
        "wait_for_log(ex, 'counter ready')\n"
        "%docker stop ex-stop-{run}"
    ),
    "commit": (
        "b.exec_run(['sh', '-c', 'echo hello from b > /hello.txt'])\n"
        "%docker commit -c 'CMD [\"cat\", \"/hello.txt\"]' lab02-b-{run} lab02-hello-{run}"
    ),
    "extinction": (
        "%docker rm -f lab02-user-{run}\n"
        "%docker rmi {doomed}"
    ),
}
