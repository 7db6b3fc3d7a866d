"""The launcher's own readiness endpoint: GET /ready is 200 while the last real probe passed."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from conceptor.platform.health_server import HealthServer, Response


@dataclass
class ReadinessState:
    """What the launcher last learned about its service; read by the server's threads."""

    service: str
    ready: bool = False
    detail: str = "starting"
    since: float = field(default_factory=time.time)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def update(self, *, ready: bool, detail: str) -> None:
        with self.lock:
            if ready != self.ready:
                self.since = time.time()
            self.ready, self.detail = ready, detail

    def snapshot(self) -> dict[str, object]:
        with self.lock:
            return {
                "service": self.service,
                "ready": self.ready,
                "detail": self.detail,
                "since": self.since,
            }

    def response(self) -> Response:
        snap = self.snapshot()
        return Response.json(200 if snap["ready"] else 503, snap)


def readiness_server(host: str, port: int, state: ReadinessState) -> HealthServer:
    """The endpoint Tilt polls every second (bound, not yet started)."""
    routes = {"/ready": state.response, "/": state.response}
    return HealthServer(host, port, routes, name=f"readiness-{state.service}")
