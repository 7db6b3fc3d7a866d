"""The launcher's own readiness endpoint: GET /ready is 200 while the last real probe passed."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class ReadinessState:
    """What the launcher last learned about its service; shared between threads."""

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


def serve_readiness(host: str, port: int, state: ReadinessState) -> ThreadingHTTPServer:
    """Start the endpoint in a daemon thread; cheap for Tilt to poll every second."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path not in ("/ready", "/"):
                self.send_error(404, "only /ready is served here")
                return
            snap = state.snapshot()
            body = json.dumps(snap).encode()
            self.send_response(200 if snap["ready"] else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # probes every second would flood the service log

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="readiness", daemon=True).start()
    return server
