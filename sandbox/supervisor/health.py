"""HEALTHCHECK: a container's check run on a timer, its result kept in ``State.Health``.

Docker's rules: the first check after ``--health-start-interval`` (if set)
while the state is ``starting``, then every ``--health-interval``; a check
that outlives ``--health-timeout`` is killed; ``--health-retries`` failures
in a row make the container ``unhealthy``, but failures during
``--health-start-period`` do not count until a first success.  The last five
results stay in ``State.Health.Log`` with their first 4 KiB of output.
"""

from __future__ import annotations

import time
from typing import Any, Protocol
from collections.abc import Callable

from ..errors import SandboxError
from .conn import Collector
from .loop import Loop, Timer

HEALTH_LOG_KEEP = 5
HEALTH_OUTPUT_MAX = 4096


def now_text() -> str:
    from ..containers.logs import rfc3339_nano
    return rfc3339_nano(time.time_ns())


class Checked(Protocol):
    """The container side of a health check (a Box)."""

    rec: dict[str, Any]

    @property
    def running(self) -> bool: ...

    def exec(self, cfg: dict[str, Any], sink: Any, *, done: Callable[[int, bytes], None] | None = None,
             timeout: float | None = None) -> Any: ...

    def save(self, durable: bool = False) -> None: ...

    def event(self, action: str, **attrs: Any) -> None: ...


def health_config(rec: dict[str, Any]) -> dict[str, Any] | None:
    """The container's Healthcheck, or None when it has none (or ``NONE``)."""
    hc = rec["Config"].get("Healthcheck") or {}
    test = hc.get("Test") or []
    if not test or test[0] == "NONE":
        return None
    return dict(hc)


class HealthCheck:
    """The timer and the bookkeeping of one container's checks."""

    def __init__(self, box: Checked, loop: Loop) -> None:
        self.box, self.loop = box, loop
        self.timer: Timer | None = None

    @property
    def state(self) -> dict[str, Any]:
        return self.box.rec["State"]

    def reset(self) -> None:
        if health_config(self.box.rec) is not None:
            self.state["Health"] = {"Status": "starting", "FailingStreak": 0, "Log": []}

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def schedule(self, first: bool = False) -> None:
        hc = health_config(self.box.rec)
        if hc is None or not self.box.running:
            return
        interval = (hc.get("Interval") or 30 * 10**9) / 1e9
        if first and hc.get("StartInterval") and self.state["Health"]["Status"] == "starting":
            interval = hc["StartInterval"] / 1e9
        self.timer = self.loop.call_later(interval, self._run)

    def _run(self) -> None:
        self.timer = None
        hc = health_config(self.box.rec)
        if hc is None or not self.box.running:
            return
        if self.state.get("Paused"):
            self.schedule()
            return
        test = hc["Test"]
        args = ["/bin/sh", "-c", test[1]] if test[0] == "CMD-SHELL" else list(test[1:])
        timeout = (hc.get("Timeout") or 30 * 10**9) / 1e9
        started = now_text()

        def done(code: int, output: bytes) -> None:
            self._result(hc, started, code, output)

        try:
            self.box.exec({"Cmd": args, "Env": [], "WorkingDir": "", "User": "", "Tty": False},
                          Collector(HEALTH_OUTPUT_MAX), done=done, timeout=timeout)
        except SandboxError as e:
            self._result(hc, started, -1, str(e).encode())

    def _result(self, hc: dict[str, Any], started: str, code: int, output: bytes) -> None:
        health = self.state.get("Health")
        if health is None or not self.box.running:
            return
        health["Log"] = (health.get("Log") or [])[-(HEALTH_LOG_KEEP - 1):] + [{
            "Start": started, "End": now_text(), "ExitCode": code,
            "Output": output[:HEALTH_OUTPUT_MAX].decode(errors="replace")}]
        retries = int(hc.get("Retries") or 3)
        start_period = (hc.get("StartPeriod") or 0) / 1e9
        in_grace = time.monotonic() - float(self.box.rec["Sandbox"].get("LastStart") or 0) < start_period
        old = health["Status"]
        if code == 0:
            health.update(Status="healthy", FailingStreak=0)
        elif not (in_grace and old == "starting"):
            health["FailingStreak"] = int(health.get("FailingStreak") or 0) + 1
            if health["FailingStreak"] >= retries:
                health["Status"] = "unhealthy"
        self.box.save()
        if health["Status"] != old:
            self.box.event(f"health_status: {health['Status']}")
        self.schedule()
