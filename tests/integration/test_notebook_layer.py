"""The notebook layer in a real kernel (nbclient): every magic and option, the views' widget
models after actions, the resource monitor, interrupts.  Results are checked by state (images
that exist, containers that ran or are gone, exit codes), not by printed text."""

from __future__ import annotations

import json
import os
import signal
import threading

import nbformat
import pytest
from nbclient import NotebookClient

from sandbox import Engine
from sandbox.errors import ImageNotFound
from tests.conftest import cgroup_controller_missing, requires_cgroup, rootless_mode

pytestmark = pytest.mark.integration


def execute(sources: list[str], path: str | None = None, interrupt_after: tuple[int, float] | None = None):
    """Run cells; ``interrupt_after=(cell, seconds)`` interrupts the kernel while that cell runs."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    client = NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": path}} if path else {})
    if interrupt_after is None:
        client.execute()
        return [c.outputs for c in nb.cells]
    index, delay = interrupt_after
    with client.setup_kernel():
        for i, cell in enumerate(nb.cells):
            timer = None
            if i == index:
                # SIGINT to the kernel process, as Jupyter's "interrupt" does for a local kernel
                pid = client.km.provisioner.process.pid
                timer = threading.Timer(delay, os.kill, (pid, signal.SIGINT))
                timer.start()
            client.execute_cell(cell, i)
            if timer is not None:
                timer.cancel()
    return [c.outputs for c in nb.cells]


def streams(cell, name: str) -> str:
    return "".join(o.get("text", "") for o in cell if o["output_type"] == "stream" and o["name"] == name)


def result(cell) -> dict:
    found = [o for o in cell if o["output_type"] == "execute_result"]
    assert found, cell
    return found[0]["data"]


def no_errors(outputs) -> None:
    for i, cell in enumerate(outputs):
        errors = [o for o in cell if o["output_type"] == "error"]
        assert not errors, f"cell {i}: {errors[0]['ename']}: {errors[0]['evalue']}"


def json_out(cell) -> object:
    return json.loads(streams(cell, "stdout").strip().splitlines()[-1])


@pytest.fixture
def store(sandbox_root, busybox_binary):
    engine = Engine(sandbox_root)
    engine.images.bootstrap("busybox", binary=busybox_binary)
    yield engine
    for c in engine.containers.list(all=True):
        c.remove(force=True, v=True)
    from tests.integration.container_env import stop_supervisor
    stop_supervisor(engine)


def test_dockerfile_magic(store, tmp_path):
    (tmp_path / "notes.txt").write_text("from the notebook's folder\n")
    other = tmp_path / "other-context"
    other.mkdir()
    (other / "only-there.txt").write_text("from --context\n")
    outputs = execute([
        "%load_ext sandbox",
        "%%dockerfile -t greet:v1 -o img --build-arg WHO=class --label course=containers\n"
        "FROM busybox\nARG WHO\nRUN echo hello $WHO > /greeting\nCOPY notes.txt /\nCMD [\"cat\", \"/greeting\"]\n",
        "import json; print(json.dumps([img.tags, img.labels]))",
        "%%dockerfile -t greet:v1 -q --build-arg WHO=class --label course=containers\n"
        "FROM busybox\nARG WHO\nRUN echo hello $WHO > /greeting\nCOPY notes.txt /\nCMD [\"cat\", \"/greeting\"]\n",
        "%%dockerfile -t broken\nFROM busybox\nRUN echo about to fail; exit 4\n",
        "%%dockerfile -t typo\nFROM busybox\n\nCPOY a b\n",
        "%%dockerfile --bogus\nFROM busybox\n",
        "%%dockerfile -t staged --target one --no-cache\nFROM busybox AS one\nRUN echo 1 > /one\n"
        "FROM one\nRUN false\n",
        "%%dockerfile --help\nFROM busybox\n",
        f"%%dockerfile -t elsewhere --context {other}\nFROM busybox\nCOPY only-there.txt /\n",
    ], path=str(tmp_path))
    no_errors(outputs)
    assert "text/html" in result(outputs[1]) and "greet:v1" in result(outputs[1])["text/plain"]
    assert json_out(outputs[2]) == [["greet:v1"], {"course": "containers"}]
    assert "MISS" in streams(outputs[1], "stdout")
    assert "MISS" not in streams(outputs[3], "stdout")        # -q prints only the summary: all hits
    assert "5 cached, 0 built" in streams(outputs[3], "stdout")
    img = store.images.get("greet:v1")
    assert store.run("greet:v1").output == b"hello class\n"
    assert store.run("greet:v1", ["cat", "/notes.txt"]).output == b"from the notebook's folder\n"
    assert img.labels == {"course": "containers"}
    # a failed RUN: one paragraph quoting the cell's line, the output's tail, nothing tagged
    err = streams(outputs[4], "stderr")
    assert "line 2 of this cell: RUN echo about to fail; exit 4" in err and "about to fail" in err
    assert "non-zero code: 4" in err
    with pytest.raises(ImageNotFound):
        store.images.get("broken")
    assert "(this cell):3: unknown instruction: CPOY" in streams(outputs[5], "stderr")
    assert "did you mean COPY" in streams(outputs[5], "stderr")
    assert streams(outputs[6], "stderr").startswith("Error:") and "--bogus" in streams(outputs[6], "stderr")
    assert store.run("staged", ["cat", "/one"]).output == b"1\n"
    assert "--build-arg" in streams(outputs[8], "stdout")
    assert store.run("elsewhere", ["cat", "/only-there.txt"]).output == b"from --context\n"
    assert not [c for c in store.containers.list(all=True)]   # RUN containers are gone


def test_docker_line_magic_results_and_container_cell(store, tmp_path):
    outputs = execute([
        "%load_ext sandbox",
        "import json\nimgs = %docker images\nprint(json.dumps([i.tags for i in imgs]))",
        "%docker images",
        "c = %docker run -d --name ticker --label role=demo busybox sleep 60\nprint(c.name, c.status)",
        "ps = %docker ps --filter label=role=demo\nprint(json.dumps([x.name for x in ps]))",
        "%%container busybox -e WHO=class\necho hi $WHO\nexit 3",
        "%%container -e A=1 --hostname box busybox\nhostname; echo $A",
        "st = %docker stats --no-stream ticker\n%docker run --name talker busybox echo talked\n"
        "lg = %docker logs talker\nprint(json.dumps([st[0].summary()['name'], lg.value, 'talked' in lg]))",
        "%docker stop -t 1 ticker",
        "info = %docker inspect ticker\nprint(json.dumps([info[0]['State']['Status'], info[0]['Name']]))",
        "h = %docker history busybox\nprint(len(h))",
        "%docker run --rm busybox sh -c 'exit 5'",
        "%docker?\nprint(get_ipython().magics_manager.magics['line']['docker'].__doc__)",
        "print(json.dumps([get_ipython().complete('', line)[1] for line in ('%docker hist', "
        "'%docker stop tick', '%sandbox rmi bus')]))",
    ])
    no_errors(outputs)
    assert json_out(outputs[1]) == [["busybox:latest"]]
    table = result(outputs[2])
    assert "<table" in table["text/html"] and "busybox" in table["text/html"]
    assert "REPOSITORY" in table["text/plain"]
    assert streams(outputs[3], "stdout").strip().splitlines()[-1] == "ticker running"
    assert json_out(outputs[4]) == ["ticker"]
    assert result(outputs[5])["text/plain"] == "exit code 3"
    assert streams(outputs[5], "stdout") == "hi class\n"
    assert streams(outputs[6], "stdout") == "box\n1\n"
    assert json_out(outputs[9]) == ["exited", "/ticker"]
    assert json_out(outputs[10]) >= 1
    assert result(outputs[11])["text/plain"] == "exit code 5"
    help_text = streams(outputs[12], "stdout")   # what `%docker?` pages (a payload nbclient drops)
    assert "build" in help_text and "run" in help_text
    assert json_out(outputs[13]) == [["history"], ["ticker"], ["busybox:latest"]]
    assert json_out(outputs[7]) == ["ticker", "talked\n", True]
    store.containers.get("talker").remove()
    assert store.containers.get("ticker").status == "exited"
    assert len(store.containers.list(all=True)) == 1          # --rm and %%container left nothing


def test_interrupt_stops_what_the_cell_started(store, tmp_path):
    outputs = execute([
        "%load_ext sandbox",
        "%%container busybox\necho started; sleep 60",
        "print('kernel still usable')",
    ], interrupt_after=(1, 3.0))
    assert "started" in streams(outputs[1], "stdout")
    assert "Interrupted" in streams(outputs[1], "stderr")
    assert result(outputs[1])["text/plain"] == "exit code 130"
    assert streams(outputs[2], "stdout") == "kernel still usable\n"
    assert not store.containers.list(all=True)


def test_interrupted_build_tags_nothing(store, tmp_path):
    outputs = execute([
        "%load_ext sandbox",
        "%%dockerfile -t never\nFROM busybox\nRUN echo building; sleep 60\n",
        "print('kernel still usable')",
    ], interrupt_after=(1, 4.0))
    assert "building" in streams(outputs[1], "stdout")
    assert "nothing was tagged" in streams(outputs[1], "stderr")
    assert streams(outputs[2], "stdout") == "kernel still usable\n"
    with pytest.raises(ImageNotFound):
        store.images.get("never")
    assert not store.containers.list(all=True)


def test_views_after_actions(store, tmp_path):
    outputs = execute([
        "%load_ext sandbox",
        "%%dockerfile -t layered -q\nFROM busybox\nRUN mkdir /data && echo 1 > /data/a && rm /etc/shadow\n"
        "RUN rm -r /data && mkdir /data && echo 2 > /data/b\n",
        "from magics import LayerExplorer, DiffView, NamespaceView, Dashboard\n"
        "import json\n"
        "le = LayerExplorer('layered', compare='busybox')\n"
        "le.select.value = 1\n"
        "t1 = le.tree.value\n"
        "le.select.value = 2\n"
        "t2 = le.tree.value\n"
        "print(json.dumps([len(le.layers), le.shared, 'data/' in t1 or '>data<' in t1, "
        "'shadow' in t1, 'opaque' in t2 or '>a<' in t2, 'shared' in le.compare_table.value]))",
        "le",
        "%docker run -d --name box busybox sh -c 'echo x > /new; rm /etc/passwd; sleep 60'\n"
        "import time; time.sleep(0.5)\n"
        "dv = DiffView('box'); ns = NamespaceView('box')\n"
        "from sandbox import Engine; mode = Engine().containers.get('box').attrs['HostConfig']['NetworkMode']\n"
        "print(json.dumps([sorted(dv.changes), sorted(r['namespace'] for r in ns.rows if r['isolated']), mode]))",
        "dash = Dashboard(interval=0.5)\n"
        "before = [len(dash.containers_box.children), sorted(dash.rows), sorted(dash.image_rows)]\n"
        "buttons = {b.description: b for b in dash.rows['box'].children if hasattr(b, 'on_click')}\n"
        "buttons['pause'].click()\n"
        "paused = dash.engine.containers.get('box').status\n"
        "unpause = {b.description: b for b in dash.rows['box'].children if hasattr(b, 'on_click')}\n"
        "if paused == 'paused': unpause['unpause'].click()\n"
        "{b.description: b for b in dash.rows['box'].children if hasattr(b, 'on_click')}['rm'].click()\n"
        "dash.image_rows['layered:latest'].children[-1].click()\n"
        "time.sleep(1.2)\n"
        "print(json.dumps([before, paused, sorted(dash.rows), sorted(dash.image_rows), dash.status.value]))\n"
        "dash.close()\n"
        "import threading; print(json.dumps(sorted(t.name for t in threading.enumerate() "
        "if t.name.startswith('sandbox-'))))",
    ])
    no_errors(outputs)
    n_layers, shared, has_data, has_shadow, has_b, marked = json_out(outputs[2])
    assert n_layers == 3 and shared == [True, False, False] and has_data and has_shadow and marked
    bundle = result(outputs[3])
    assert "application/vnd.jupyter.widget-view+json" in bundle and "text/html" in bundle
    changes, isolated, network = json_out(outputs[4])
    assert changes == [["A", "/new"], ["C", "/etc"], ["D", "/etc/passwd"]]
    # rootless without slirp4netns (or a usable /dev/net/tun) shares the host's network
    assert {"mnt", "pid", "uts", "ipc"} | ({"net"} if network != "host" else set()) <= set(isolated)
    lines = streams(outputs[5], "stdout").strip().splitlines()
    before, paused, rows_after, images_after, status = json.loads(lines[-2])
    assert before[1] == ["box"] and "layered:latest" in before[2]
    if rootless_mode() and cgroup_controller_missing("freezer"):
        assert paused == "running"    # no freezer delegated to the user: pause is refused, the container runs on
    else:
        assert paused == "paused"
    assert rows_after == [] and "layered:latest" not in images_after and "done" in status
    assert json.loads(lines[-1]) == []                     # the refresh thread is gone
    assert not store.containers.list(all=True)
    with pytest.raises(ImageNotFound):
        store.images.get("layered")


@requires_cgroup("memory", "cpu", "pids")
def test_resource_monitor_records_steps_and_stops(store):
    # files in the container's /dev/shm (a tmpfs) are charged to its memory cgroup and stay
    hog = ("sleep 0.6; for f in a b c; do dd if=/dev/zero of=/dev/shm/$f bs=1M count=8 2>/dev/null; "
           "sleep 1; done; sleep 0.5")
    outputs = execute([
        "%load_ext sandbox",
        "from magics import ResourceMonitor, plot_stats\nimport json, time, threading\n"
        f"c = %docker run -d --name hog --memory 96m busybox sh -c \"{hog}\"\n"
        "mon = ResourceMonitor(c, interval=0.1)",
        "busy = sum(i * i for i in range(200000)); print('other cell ran while it sampled')",
        "mon.thread.join(30)\n"
        "mem = [d['memory'] for d in mon.data]\n"
        "print(json.dumps([len(mon.data), mon.draws, mem, mon.data[-1]['memory_limit'], mon.running, "
        "sorted(t.name for t in threading.enumerate() if t.name.startswith('sandbox-'))]))",
        "plot_stats(mon.data)",
        "mon",
    ])
    no_errors(outputs)
    assert streams(outputs[2], "stdout").startswith("other cell ran")
    samples, draws, mem, limit, running, threads = json_out(outputs[3])
    # sampled fast, redrawn slowly (counts, not times: a loaded machine delays a redraw)
    assert samples >= 20 and 2 <= draws and draws * 3 <= samples
    assert limit == 96 * 2**20
    mib = [m / 2**20 for m in mem]
    # rises in steps: low at first, above 6, then above 14, then above 22 MiB
    assert min(mib[:3]) < 6 and max(mib) > 20
    first_above = [next(i for i, m in enumerate(mib) if m > level) for level in (6, 14, 20)]
    assert first_above == sorted(first_above) and len(set(first_above)) == 3
    assert not running and threads == []
    assert "image/png" in result(outputs[4])
    assert "text/html" in result(outputs[5])     # a static copy for saved notebooks
