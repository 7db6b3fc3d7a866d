"""A worker's HTTP endpoint: /healthz (200 only while polling), /livez, /metrics (Prometheus)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

import httpx
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from conceptor.platform.health_server import HealthServer, Response
from conceptor.platform.logging import get_logger

State = Literal["starting", "waiting-for-temporal", "polling", "draining", "stopped"]

log = get_logger("conceptor.worker.health")


@dataclass
class WorkerHealth:
    """The state a worker reports; `metrics_url` is the SDK runtime's own Prometheus endpoint.

    The Temporal runtime binds its exporter on a private loopback port; /metrics here appends
    its text to our own registry's, so each worker exposes exactly one port (health + metrics),
    as probes and scrapers expect.
    """

    queue: str
    index: int
    identity: str
    metrics_url: str | None = None
    state: State = "starting"
    pid: int = field(default_factory=os.getpid)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry, repr=False)

    def __post_init__(self) -> None:
        polling = Gauge(
            "conceptor_worker_polling",
            "1 while the worker polls its task queue.",
            ["queue", "index"],
            registry=self.registry,
        )
        polling.labels(self.queue, str(self.index)).set_function(
            lambda: 1.0 if self.state == "polling" else 0.0
        )

    def snapshot(self) -> dict[str, object]:
        return {
            "status": self.state,
            "queue": self.queue,
            "index": self.index,
            "identity": self.identity,
            "pid": self.pid,
        }

    def server(self, host: str, port: int) -> HealthServer:
        """The endpoint, bound (OSError when the port is taken) but not yet serving."""
        routes = {
            "/healthz": self.healthz,
            "/readyz": self.healthz,
            "/": self.healthz,
            "/livez": self.livez,
            "/metrics": self.metrics,
        }
        return HealthServer(host, port, routes, name=f"health-{self.queue}-{self.index}")

    def healthz(self) -> Response:
        return Response.json(200 if self.state == "polling" else 503, self.snapshot())

    def livez(self) -> Response:
        # Alive while the process answers, also when waiting for Temporal or draining: a
        # liveness probe must not kill a worker that is only waiting or finishing work.
        return Response.json(200, self.snapshot())

    def metrics(self) -> Response:
        own = generate_latest(self.registry)
        if self.metrics_url is None:
            return Response(200, own, CONTENT_TYPE_PLAIN_0_0_4)
        try:
            upstream = httpx.get(self.metrics_url, timeout=5)
            upstream.raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("Temporal runtime metrics unavailable", reason=str(exc))
            note = f"# runtime metrics unavailable: {exc}\n".encode()
            return Response(502, own + note, CONTENT_TYPE_PLAIN_0_0_4)
        return Response(200, own + upstream.content, CONTENT_TYPE_PLAIN_0_0_4)
