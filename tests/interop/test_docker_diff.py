"""``diff`` beside ``docker diff``: the same commands give the same A/C/D lines."""

from __future__ import annotations

import pytest

SCRIPTS = {
    "add-change-delete": "mkdir -p /newdir/sub && echo x > /newdir/sub/f && rm /etc/shadow "
                         "&& echo extra >> /etc/passwd && touch /tmp/t",
    "replace-dir": "rm -rf /home && mkdir /home && echo n > /home/new",
    "hosts-untouched": "cat /etc/hosts /etc/resolv.conf /etc/hostname > /dev/null && echo ok > /ok",
    "symlink-and-chmod": "ln -s /etc/passwd /pw && chmod 600 /etc/group",
}


@pytest.fixture(scope="module")
def ours(busybox_both):
    return busybox_both[0]


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_diff_matches_docker(ours, docker, name):
    script = SCRIPTS[name]
    container = ours.containers.create("busybox", ["sh", "-c", script], network_mode="none")
    code = ours.containers.start_attached(container.id, lambda s, d: None)
    assert code == 0
    mine = sorted(f"{k} {p}" for k, p in container.reload().changes())
    cname = f"sbx-diff-{name}"
    docker("rm", "-f", cname, check=False)
    docker("run", "--name", cname, "--network", "none", "busybox", "sh", "-c", script)
    try:
        theirs = sorted(docker("diff", cname).stdout.decode().split("\n"))
        theirs = [t for t in theirs if t]
        assert mine == theirs
    finally:
        docker("rm", "-f", cname, check=False)
        container.remove(force=True)
