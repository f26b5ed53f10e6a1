"""Lab 04, layers and copy-on-write: one solution per exercise (see labs/solutions/__init__.py)."""

SOLUTIONS = {
    "delete-dir": (
        "%%dockerfile -t lab04-nocache-{run} --build-arg BASE=lab04-layers-{run}\n"
        "ARG BASE\n"
        "FROM $BASE\n"
        "RUN rm -rf /srv/cache"
    ),
    "overlay-by-hand": (
        "!mount -t overlay overlay -o lowerdir={ex2}/layer2:{ex2}/layer1,upperdir={ex2}/upper,workdir={ex2}/work {ex2}/merged\n"
        "!rm {ex2}/merged/old.txt\n"
        "!echo hello > {ex2}/merged/hello.txt"
    ),
    "opaque-dir": (
        "%%dockerfile -t lab04-fresh-{run} --build-arg BASE=lab04-layers-{run}\n"
        "ARG BASE\n"
        "FROM $BASE\n"
        "RUN rm -rf /srv/cache && mkdir /srv/cache"
    ),
}
