"""Lab 08, registries: one solution per exercise (see labs/solutions/__init__.py)."""

SOLUTIONS = {
    "pin": 'pinned = laptop2.images.pull(f"{REGISTRY}/class/app@{v1.manifest_digest}")',
    "login-push": (
        "%docker login -u student -p {password} {LOCKED}\n"
        "%docker push {name_locked}"
    ),
    "capstone-dockerfile": (
        "%%dockerfile -t {capstone}\n"
        "FROM busybox\n"
        'RUN echo "shipped through a registry" > /message\n'
        'CMD ["cat", "/message"]'
    ),
    "capstone-push": "%docker push {capstone}",
}
