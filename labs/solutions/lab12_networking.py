"""Lab 12, networking: one solution per exercise (see labs/solutions/__init__.py)."""

SOLUTIONS = {
    "link-up": "!nsenter -t {ns_pid} -n ip link set eth0 up",
    "fetch-page": (
        "web_ip = web.reload().attrs['NetworkSettings']['IPAddress']\n"
        "page = fetch(f'http://{web_ip}/')"
    ),
    "publish": (
        "%docker run -d --name ex3-{run} -p {ex3_port}:80 busybox sh -c "
        "'mkdir -p /w && echo exercise three > /w/index.html && exec httpd -f -p 80 -h /w'"
    ),
    "alias": (
        "%docker run -d --name ex4-{run} --network {net} --network-alias api busybox sh -c "
        "'mkdir -p /w && echo api > /w/index.html && exec httpd -f -p 8080 -h /w'"
    ),
}
