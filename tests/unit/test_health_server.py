"""The shared health server, the launcher's /ready and a worker's /healthz, /livez, /metrics."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conceptor.platform.devservices.readiness import ReadinessState, readiness_server
from conceptor.platform.health_server import HealthServer, Response
from conceptor.workers.health import WorkerHealth


@contextmanager
def serving(server: HealthServer) -> Iterator[httpx.Client]:
    with server, httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=5) as http:
        yield http


def _fail() -> Response:
    msg = "probe state lost"
    raise RuntimeError(msg)


def test_routes_answer_get_and_head_and_refuse_the_rest() -> None:
    """A route answers GET (body) and HEAD (no body); unknown paths 404, POST 405, errors 500."""
    routes = {"/ok": lambda: Response.json(200, {"a": 1}), "/boom": _fail}
    with serving(HealthServer("127.0.0.1", 0, routes, name="t")) as http:
        got = http.get("/ok?verbose=1")
        head = http.head("/ok")
        missing = http.get("/nope")
        posted = http.post("/ok")
        failed = http.get("/boom")
    assert (got.status_code, got.json(), got.headers["content-type"]) == (
        200,
        {"a": 1},
        "application/json",
    )
    assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", "9")
    assert (missing.status_code, missing.text) == (404, "not found: try /ok, /boom\n")
    assert (posted.status_code, posted.headers["allow"]) == (405, "GET, HEAD")
    assert (failed.status_code, failed.text) == (500, "RuntimeError: probe state lost\n")


def test_a_taken_port_raises_and_close_releases_it() -> None:
    """Binding happens in the constructor (OSError on a taken port); close frees the port."""
    server = HealthServer("127.0.0.1", 0, {}, name="t").start()
    port = server.port
    with pytest.raises(OSError, match="Address already in use"):
        HealthServer("127.0.0.1", port, {}, name="t")
    server.close()
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0
    HealthServer("127.0.0.1", port, {}, name="t").close()  # the port can be bound again


def test_launcher_ready_follows_the_probe_state() -> None:
    """/ready is 503 while starting, 200 once the probe passed, with the detail."""
    state = ReadinessState(service="redis")
    with serving(readiness_server("127.0.0.1", 0, state)) as http:
        starting = http.get("/ready")
        state.update(ready=True, detail="redis 7.0.15")
        ready = http.get("/ready")
    assert starting.status_code == 503
    assert {k: starting.json()[k] for k in ("service", "ready", "detail")} == {
        "service": "redis",
        "ready": False,
        "detail": "starting",
    }
    assert ready.status_code == 200
    assert (ready.json()["ready"], ready.json()["detail"]) == (True, "redis 7.0.15")


def _polling_samples(text: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        if family.name == "conceptor_worker_polling"
        for sample in family.samples
    ]


def test_worker_health_states_and_metrics() -> None:
    """/healthz 200 only while polling, /livez always 200; the polling gauge follows the state."""
    health = WorkerHealth(queue="media", index=3, identity="worker-media-3@h", pid=42)
    with serving(health.server("127.0.0.1", 0)) as http:
        health.state = "waiting-for-temporal"
        waiting = (http.get("/healthz"), http.get("/livez"), http.get("/metrics"))
        health.state = "polling"
        polling = (http.get("/healthz"), http.get("/livez"), http.get("/metrics"))
    assert [r.status_code for r in waiting] == [503, 200, 200]
    assert [r.status_code for r in polling] == [200, 200, 200]
    assert polling[0].json() == {
        "status": "polling",
        "queue": "media",
        "index": 3,
        "identity": "worker-media-3@h",
        "pid": 42,
    }
    assert waiting[1].json()["status"] == "waiting-for-temporal"
    assert _polling_samples(waiting[2].text) == [({"queue": "media", "index": "3"}, 0.0)]
    assert _polling_samples(polling[2].text) == [({"queue": "media", "index": "3"}, 1.0)]
    assert polling[2].headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"


def test_worker_metrics_append_the_runtime_export_or_say_it_is_missing() -> None:
    """The SDK runtime's text follows ours (one valid exposition); unreachable runtime: 502."""
    runtime_text = (
        "# HELP temporal_long_request Long requests.\n"
        "# TYPE temporal_long_request counter\n"
        'temporal_long_request{operation="PollActivityTaskQueue"} 7\n'
    )
    upstream = HealthServer(
        "127.0.0.1", 0, {"/metrics": lambda: Response(200, runtime_text.encode())}, name="up"
    )
    with upstream:
        health = WorkerHealth(
            queue="core",
            index=0,
            identity="worker-core-0@h",
            metrics_url=f"http://127.0.0.1:{upstream.port}/metrics",
        )
        health.state = "polling"
        with serving(health.server("127.0.0.1", 0)) as http:
            proxied = http.get("/metrics")
    with socket.socket() as sock:  # a port nothing listens on: the runtime is gone
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    health.metrics_url = f"http://127.0.0.1:{closed}/metrics"
    with serving(health.server("127.0.0.1", 0)) as http:
        missing = http.get("/metrics")
    assert proxied.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(proxied.text)}
    assert families["temporal_long_request"].samples[0].value == 7
    assert _polling_samples(proxied.text) == [({"queue": "core", "index": "0"}, 1.0)]
    assert missing.status_code == 502
    assert _polling_samples(missing.text) == [({"queue": "core", "index": "0"}, 1.0)]
    assert "# runtime metrics unavailable: " in missing.text
