"""A detached container outlives a notebook kernel restart (nbclient's restart_kernel(now=True)).

The kernel runs ``Engine().containers.run(..., detach=True)`` and is then
restarted the way Jupyter does it -- its whole process group killed.  The
supervisor lives in its own session, so the container keeps running, its
later lines reach ``logs -f`` in the new kernel, and its exit code is recorded.
"""

from __future__ import annotations


import nbformat
from nbclient import NotebookClient
from nbclient.util import run_sync

from tests.integration.container_env import engine  # noqa: F401
from tests.conftest import requires_containers

pytestmark = requires_containers   # root, or rootless (tools/rootless_tier.py)


def test_detached_container_survives_kernel_restart(engine):
    code_start = (
        "import os; os.environ['SANDBOX_ROOT'] = %r\n"
        "from sandbox import Engine\n"
        "c = Engine().containers.run('busybox', ['sh', '-c', 'for i in 1 2 3 4 5 6 7 8; do echo tick$i; "
        "sleep 0.25; done; exit 4'], detach=True, name='outlives-kernel')\n"
        "print('kernel', os.getpid())" % str(engine.root))
    code_follow = (
        "import os; os.environ['SANDBOX_ROOT'] = %r\n"
        "from sandbox import Engine\n"
        "c = Engine().containers.get('outlives-kernel')\n"
        "print(b''.join(c.logs(stream=True, follow=True)).decode().split())\n"
        "print('exit', c.wait()['StatusCode'])\n"
        "print('kernel', os.getpid())" % str(engine.root))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code_start),
                                         nbformat.v4.new_code_cell(code_follow)])
    client = NotebookClient(nb, timeout=60, kernel_name="python3")
    with client.setup_kernel():
        client.execute_cell(nb.cells[0], 0)
        run_sync(client.km.restart_kernel)(now=True)
        run_sync(client.kc.wait_for_ready)(timeout=60)
        client.execute_cell(nb.cells[1], 1)
    text = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert "tick8" in text and "exit 4" in text, text
    before = "".join(o.get("text", "") for o in nb.cells[0].outputs).split("kernel ")[1].split()[0]
    after = text.split("kernel ")[1].split()[0]
    assert before != after  # a new kernel process
    c = engine.containers.get("outlives-kernel")
    assert c.attrs["State"]["ExitCode"] == 4
    c.remove()
