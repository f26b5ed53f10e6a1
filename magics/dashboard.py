"""``Dashboard()``: the store's containers and images, with buttons, refreshing itself.

One row per container (name, image, state, uptime, ports) with the buttons
that make sense in its state (start, stop, pause, unpause, rm), one row per
image with rmi, one row per network (its subnet and who is on it; rm for
the ones made with ``network create``) and a "draw" button that shows the
:class:`~magics.netview.NetworkView` picture below.  A button acts through the same engine calls as the
command, then the view refreshes; an action that fails shows its one-line
error in the status line instead of raising in a callback.  A daemon thread
refreshes every ``interval`` seconds while ``auto`` is on; ``close()`` stops
it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sandbox.display import table
from sandbox.errors import SandboxError
from sandbox.humanize import ago, size as human_size

from .views import View, _engine, refresh_button

ACTIONS = {"running": ("stop", "pause", "rm"), "paused": ("unpause", "stop", "rm"),
           "restarting": ("stop", "rm"), "created": ("start", "rm"), "exited": ("start", "rm"),
           "dead": ("rm",)}


def _bind(fn: Callable[..., None], *args: Any) -> Callable[[], None]:
    """A button callback with its arguments fixed now (not at click time)."""
    return lambda: fn(*args)


class Dashboard(View):
    def __init__(self, *, engine: Any = None, interval: float = 2.0, auto: bool = True) -> None:
        import ipywidgets as w
        self.engine = _engine(engine)
        self.interval = interval
        self.status = w.HTML()
        self.refresh_button = refresh_button(self.refresh)
        self.auto = w.Checkbox(value=auto, description="refresh every %gs" % interval, indent=False)
        self.containers_box = w.VBox()
        self.images_box = w.VBox()
        self.networks_box = w.VBox()
        self.drawing = w.VBox()
        self.rows: dict[str, Any] = {}          # container name -> its HBox
        self.image_rows: dict[str, Any] = {}    # image tag (or short id) -> its HBox
        self.widget = w.VBox([w.HBox([self.refresh_button, self.auto, self.status]),
                              w.HTML("<b>Containers</b>"), self.containers_box,
                              w.HTML("<b>Images</b>"), self.images_box,
                              w.HBox([w.HTML("<b>Networks</b>"), self._button("draw", self.draw_networks)]),
                              self.networks_box, self.drawing])
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.refresh()
        self._thread = threading.Thread(target=self._loop, name="sandbox-dashboard", daemon=True)
        self._thread.start()

    # -- actions ----------------------------------------------------------------------

    def act(self, name: str, action: str) -> None:
        """Do ``action`` (start, stop, pause, unpause, rm) on container ``name``, then refresh."""
        try:
            c = self.engine.containers.get(name)
            if action == "rm":
                c.remove(force=True)
            elif action == "stop":
                c.stop(timeout=3)
            else:
                getattr(c, action)()
            self.status.value = f"{action} {name}: done"
        except SandboxError as e:
            self.status.value = f'<span style="color:#cf222e">{action} {name}: {e}</span>'
        self.refresh()

    def network_rm(self, name: str) -> None:
        try:
            self.engine.networks.get(name).remove()
            self.status.value = f"network rm {name}: done"
        except SandboxError as e:
            self.status.value = f'<span style="color:#cf222e">network rm {name}: {e}</span>'
        self.refresh()

    def draw_networks(self) -> None:
        """Show (or redraw) the network picture under the rows."""
        from .netview import NetworkView
        try:
            self.drawing.children = [NetworkView(engine=self.engine).widget]
        except SandboxError as e:
            self.status.value = f'<span style="color:#cf222e">networks: {e}</span>'

    def _network_rows(self) -> list[dict[str, Any]]:
        out = []
        for n in self.engine.networks.list():
            a = n.attrs
            cfg = (a.get("IPAM", {}).get("Config") or [{}])[0]
            out.append({"name": n.name, "driver": a["Driver"], "subnet": cfg.get("Subnet", ""),
                        "containers": ", ".join(sorted(v["Name"] for v in (a.get("Containers") or {}).values())),
                        "builtin": n.name in ("bridge", "host", "none")})
        return sorted(out, key=lambda r: (not r["builtin"], r["name"]))

    def rmi(self, ref: str) -> None:
        try:
            self.engine.images.remove(ref)
            self.status.value = f"rmi {ref}: done"
        except SandboxError as e:
            self.status.value = f'<span style="color:#cf222e">rmi {ref}: {e}</span>'
        self.refresh()

    # -- drawing -----------------------------------------------------------------------

    def _button(self, label: str, callback: Callable[[], None]) -> Any:
        import ipywidgets as w
        b = w.Button(description=label, layout=w.Layout(width="80px"))
        b.on_click(lambda _: callback())
        return b

    def _container_rows(self) -> list[dict[str, Any]]:
        out = []
        for c in self.engine.containers.list(all=True):
            a = c.attrs
            state = a["State"]
            status = state.get("Status", "")
            uptime = ago(state["StartedAt"]).replace(" ago", "") if state.get("Running") else ""
            from sandbox.network.ports import bindings_text
            ports = bindings_text((a.get("NetworkSettings") or {}).get("Ports") or {}) if state.get("Running") else ""
            out.append({"name": c.name, "image": (a.get("Sandbox") or {}).get("ImageRef") or a["Image"][:19],
                        "state": status + (f" ({state.get('ExitCode')})" if status == "exited" else ""),
                        "status": status, "uptime": uptime, "ports": ports})
        return out

    def refresh(self) -> None:
        """Read the store again and redraw the rows."""
        import ipywidgets as w
        with self._lock:
            try:
                containers = self._container_rows()
                images = self.engine.images.list()
            except SandboxError as e:
                self.status.value = f'<span style="color:#cf222e">{e}</span>'
                return
            rows = {}
            for r in containers:
                cells = [w.HTML(f"<code>{r[k]}</code>", layout=w.Layout(width=width))
                         for k, width in (("name", "160px"), ("image", "160px"), ("state", "110px"),
                                          ("uptime", "110px"), ("ports", "180px"))]
                buttons = [self._button(a, _bind(self.act, r["name"], a))
                           for a in ACTIONS.get(r["status"], ("rm",))]
                rows[r["name"]] = w.HBox(cells + buttons)
            self.rows = rows
            self.containers_box.children = list(rows.values()) or [w.HTML("<i>no containers</i>")]
            image_rows = {}
            for img in images:
                ref = img.tags[0] if img.tags else img.short_id
                cells = [w.HTML(f"<code>{ref}</code>", layout=w.Layout(width="220px")),
                         w.HTML(f"<code>{img.short_id}</code>", layout=w.Layout(width="120px")),
                         w.HTML(human_size(img.size), layout=w.Layout(width="90px"))]
                image_rows[ref] = w.HBox(cells + [self._button("rmi", _bind(self.rmi, ref))])
            self.image_rows = image_rows
            self.images_box.children = list(image_rows.values()) or [w.HTML("<i>no images</i>")]
            networks = self._network_rows() if self.engine.supervisor.status() is not None else []
            boxes = []
            for r in networks:
                cells = [w.HTML(f"<code>{r[k]}</code>", layout=w.Layout(width=width))
                         for k, width in (("name", "160px"), ("driver", "70px"), ("subnet", "140px"),
                                          ("containers", "260px"))]
                buttons = [] if r["builtin"] else [self._button("rm", _bind(self.network_rm, r["name"]))]
                boxes.append(w.HBox(cells + buttons))
            self.networks_box.children = boxes or [w.HTML("<i>no supervisor running: no networks to show</i>")]
            self._snapshot = (containers, [(i.tags, i.short_id, i.size) for i in images])
            self._networks = networks

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            if self.auto.value:
                try:
                    self.refresh()
                except Exception:  # noqa: BLE001 - a refresh must never kill the thread silently mid-class
                    pass

    def close(self) -> None:
        """Stop refreshing (the thread ends within one interval)."""
        self._stop.set()
        self._thread.join(timeout=self.interval + 1)

    def static_html(self) -> str:
        containers, images = getattr(self, "_snapshot", ([], []))
        return ("<b>Containers</b>" + table(["NAME", "IMAGE", "STATE", "UP", "PORTS"],
                                            [[r["name"], r["image"], r["state"], r["uptime"], r["ports"]]
                                             for r in containers])
                + "<b>Images</b>" + table(["IMAGE", "ID", "SIZE"],
                                          [[", ".join(t) or "<none>", i, human_size(s)] for t, i, s in images])
                + "<b>Networks</b>" + table(["NETWORK", "DRIVER", "SUBNET", "CONTAINERS"],
                                            [[r["name"], r["driver"], r["subnet"], r["containers"]]
                                             for r in getattr(self, "_networks", [])]))
