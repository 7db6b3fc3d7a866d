"""A worker's HTTP endpoint: /healthz (200 only while polling), /livez, /metrics (Prometheus)."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from typing import Literal

import httpx

from conceptor.platform.logging import get_logger

State = Literal["starting", "waiting-for-temporal", "polling", "draining", "stopped"]
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 502: "Bad Gateway"}
_REASONS[503] = "Service Unavailable"

log = get_logger("conceptor.worker.health")


@dataclass
class WorkerHealth:
    """The state a worker reports; `metrics_url` is the SDK runtime's own Prometheus endpoint.

    The Temporal runtime binds its exporter on a private loopback port; /metrics here proxies
    it so each worker exposes exactly one port (health + metrics), as probes and scrapers expect.
    """

    queue: str
    index: int
    identity: str
    metrics_url: str | None = None
    state: State = "starting"
    pid: int = field(default_factory=os.getpid)

    def snapshot(self) -> dict[str, object]:
        return {
            "status": self.state,
            "queue": self.queue,
            "index": self.index,
            "identity": self.identity,
            "pid": self.pid,
        }

    async def serve(self, host: str, port: int) -> asyncio.Server:
        return await asyncio.start_server(self._handle, host, port, reuse_address=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), timeout=5)
            while (await asyncio.wait_for(reader.readline(), timeout=5)) not in (
                b"\r\n",
                b"\n",
                b"",
            ):
                pass  # headers are irrelevant to both routes
            parts = request_line.decode("latin-1").split()
            method, path = (parts[0], parts[1].split("?")[0]) if len(parts) >= 2 else ("", "")
            status, ctype, body = await self._route(method, path)
            head = (
                f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n"
                f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _route(self, method: str, path: str) -> tuple[int, str, bytes]:
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"method not allowed\n"
        body = json.dumps(self.snapshot()).encode() + b"\n"
        if path in ("/healthz", "/readyz", "/"):
            return (200 if self.state == "polling" else 503), "application/json", body
        if path == "/livez":
            # Alive while the loop answers, also when waiting for Temporal or draining: a
            # liveness probe must not kill a worker that is only waiting or finishing work.
            return 200, "application/json", body
        if path == "/metrics":
            return await self._metrics()
        return 404, "text/plain", b"not found: try /healthz, /livez or /metrics\n"

    async def _metrics(self) -> tuple[int, str, bytes]:
        polling = 1 if self.state == "polling" else 0
        labels = f'queue="{self.queue}",index="{self.index}"'
        own = (
            "# HELP conceptor_worker_polling 1 while the worker polls its task queue.\n"
            "# TYPE conceptor_worker_polling gauge\n"
            f"conceptor_worker_polling{{{labels}}} {polling}\n"
        ).encode()
        if self.metrics_url is None:
            return 200, "text/plain; version=0.0.4", own
        try:
            async with httpx.AsyncClient(timeout=5) as http:
                upstream = await http.get(self.metrics_url)
        except httpx.HTTPError as exc:
            log.warning("Temporal runtime metrics unavailable", reason=str(exc))
            return 502, "text/plain", own + f"# runtime metrics unavailable: {exc}\n".encode()
        return 200, "text/plain; version=0.0.4", own + upstream.content
