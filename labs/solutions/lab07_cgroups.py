"""Solutions to labs/07-cgroups.ipynb (see labs/solutions/__init__.py)."""

SOLUTIONS = {
    "shares-3-to-1": (
        "%%needs cgroups\n"
        "%docker run -d --name l07-a-{run} --cpuset-cpus 0 --cpu-shares 3072 busybox sh -c {json.dumps(BUSY)}\n"
        "%docker run -d --name l07-b-{run} --cpuset-cpus 0 --cpu-shares 1024 busybox sh -c {json.dumps(BUSY)}"
    ),
    "oom": (
        "%%needs cgroups\n"
        "%docker run -d --name l07-oom-{run} --memory 64m --memory-swap 64m busybox awk -v mib=120 {json.dumps(HOG)}"
    ),
    "pids-by-hand": (
        "%%needs cgroups\n"
        "!mkdir {pids_dir}\n"
        "!echo 10 > {pids_dir}/pids.max"
    ),
}
