"""A small threaded HTTP server for health, readiness and metrics endpoints (stdlib http.server)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Response:
    """What a route answers: status, body and its content type."""

    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"

    @classmethod
    def json(cls, status: int, payload: Mapping[str, object]) -> Response:
        return cls(status, json.dumps(payload).encode() + b"\n", "application/json")


Route = Callable[[], Response]


class HealthServer:
    """GET/HEAD `routes` on host:port, each request in its own daemon thread.

    Binds in the constructor (so a taken port raises OSError before anything starts) and
    serves from `start()` on. Probes poll every second: requests are not logged.
    """

    def __init__(self, host: str, port: int, routes: Mapping[str, Route], *, name: str) -> None:
        self.name = name
        self._routes = dict(routes)
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name=self.name
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop accepting and release the port; returns within the poll interval."""
        if self._thread is not None:
            self._server.shutdown()  # only waits when serve_forever runs, so never forever
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> HealthServer:
        return self.start()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()

    def _answer(self, path: str) -> Response:
        route = self._routes.get(urlsplit(path).path)
        if route is None:
            known = ", ".join(p for p in self._routes if p != "/")
            return Response(404, f"not found: try {known}\n".encode())
        try:
            return route()
        except Exception as exc:  # a failing route must answer, not drop the connection
            return Response(500, f"{type(exc).__name__}: {exc}\n".encode())

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        answer = self._answer

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._reply(answer(self.path), with_body=True)

            def do_HEAD(self) -> None:
                self._reply(answer(self.path), with_body=False)

            def _not_allowed(self) -> None:
                response = Response(405, b"method not allowed\n")
                self._reply(response, with_body=True, allow="GET, HEAD")

            do_POST = do_PUT = do_PATCH = do_DELETE = _not_allowed

            def _reply(self, response: Response, *, with_body: bool, allow: str = "") -> None:
                self.send_response(HTTPStatus(response.status))
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(response.body)))
                if allow:
                    self.send_header("Allow", allow)
                self.end_headers()
                if with_body:
                    self.wfile.write(response.body)

            def log_message(self, format: str, *args: object) -> None:
                return  # a probe every second would flood the log

        return Handler
