"""Lab 11, the OCI runtime: one solution per exercise (see labs/solutions/__init__.py)."""

SOLUTIONS = {
    "kill-delete": (
        "!{RUNTIME} kill {demo} KILL\n"
        "!sleep 0.5; {RUNTIME} state {demo}\n"
        "!{RUNTIME} delete {demo}"
    ),
    "hostname-env": (
        "def name_and_course(spec):\n"
        "    spec['hostname'] = f'box-{run}'\n"
        "    spec['process']['env'].append('COURSE=containers')\n"
        "\n"
        "edit_config(name_and_course);"
    ),
    "readonly-tmpfs": (
        "def read_only(spec):\n"
        "    spec['root']['readonly'] = True\n"
        "    spec['mounts'].append({'destination': '/tmp', 'type': 'tmpfs', 'source': 'tmpfs',\n"
        "                           'options': ['nosuid', 'nodev', 'mode=1777']})\n"
        "\n"
        "edit_config(read_only);"
    ),
    "engine-options": (
        "%docker run -d --name ex4-{run} -h api-{run} -e STAGE=test -u 1000 --read-only busybox sleep 600"
    ),
}
