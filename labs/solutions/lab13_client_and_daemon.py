"""Lab 13, client and daemon: one solution per exercise (see labs/solutions/__init__.py)."""

SOLUTIONS = {
    "rest-run": (
        'status, made = api("POST", f"/containers/create?name=rest-{run}",\n'
        '                   {"Image": "busybox", "Cmd": ["sleep", "300"], "Labels": {"course": "lab13"}})\n'
        'api("POST", f"/containers/{made[\'Id\']}/start")'
    ),
    "demux": (
        "def demux(data):\n"
        "    out, err = b'', b''\n"
        "    while len(data) >= 8:\n"
        "        stream, size = data[0], int.from_bytes(data[4:8], 'big')\n"
        "        payload, data = data[8:8 + size], data[8 + size:]\n"
        "        if stream == 1:\n"
        "            out += payload\n"
        "        elif stream == 2:\n"
        "            err += payload\n"
        "    return out, err\n"
    ),
    "cli-run": (
        "!{DOCKER} run -d --name cli-{run} -p {cli_port}:80 busybox sh -c "
        "'mkdir -p /w && echo hello from the docker CLI > /w/index.html && exec httpd -f -p 80 -h /w'"
    ),
}
