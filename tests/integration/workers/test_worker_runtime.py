"""`conceptor worker` as a process: health, metrics, waiting for Temporal, draining on SIGTERM."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client

from conceptor.platform.devservices.launcher import port_in_use
from conceptor.platform.queues import worker_port
from conceptor.platform.settings import Settings
from services.central.client import get_asset, ingest_upload
from tests.helpers import assert_eventually
from tests.integration.workers.media_checks import activity_attempts, result_of, running_on
from tests.worker_procs import WorkerProc

pytestmark = pytest.mark.integration
HOST = socket.gethostname()


async def test_health_and_metrics_while_polling(
    worker_services: Settings, spawn_worker: Callable[..., WorkerProc]
) -> None:
    """/healthz is 200 with identity and pid while polling; /metrics has SDK and own metrics."""
    worker = spawn_worker("core", 1)
    body = worker.wait_polling()
    assert body == {
        "status": "polling",
        "queue": "core",
        "index": 1,
        "identity": f"worker-core-1@{HOST}",
        "pid": worker.pid,
    }
    async with httpx.AsyncClient(timeout=10) as http:
        metrics = await http.get(f"http://127.0.0.1:{worker.port}/metrics")
    assert metrics.status_code == 200
    polling = [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(metrics.text)
        if family.name == "conceptor_worker_polling"
        for sample in family.samples
    ]
    assert polling == [({"queue": "core", "index": "1"}, 1.0)]
    assert "temporal_long_request" in metrics.text  # the SDK runtime's own Prometheus export


async def test_worker_waits_for_temporal_then_stops_cleanly(
    worker_services: Settings, spawn_worker: Callable[..., WorkerProc]
) -> None:
    """Temporal unreachable: /healthz 503 (/livez 200) `waiting-for-temporal`; SIGTERM exits 0."""
    closed = int(worker_services.port_prefix) * 100 + 99  # the block's last port: unassigned
    assert not port_in_use(worker_services.host, closed)
    worker = spawn_worker("core", 2, CENTRAL_TEMPORAL_ADDRESS=f"127.0.0.1:{closed}")

    async def waiting() -> None:
        got = worker.health()
        assert got is not None and got[0] == 503
        assert got[1]["status"] == "waiting-for-temporal"
        said = [line for line in worker.logs() if line.get("event") == "waiting for Temporal"]
        assert said and said[0]["address"] == f"127.0.0.1:{closed}"

    await assert_eventually(waiting, timeout=30)
    async with httpx.AsyncClient(timeout=5) as http:
        live = await http.get(f"http://127.0.0.1:{worker.port}/livez")
    assert (live.status_code, live.json()["status"]) == (200, "waiting-for-temporal")
    worker.terminate()
    assert await asyncio.to_thread(worker.wait, 20) == 0


async def test_sigterm_drains_in_flight_activity(
    worker_services: Settings,
    temporal: Client,
    spawn_worker: Callable[..., WorkerProc],
    large_png: bytes,
) -> None:
    """SIGTERM mid-thumbnail: 503 while draining, the activity finishes there, exit code 0."""
    procs = [spawn_worker("core", 0), spawn_worker("media", 0), spawn_worker("media", 1)]
    for proc in procs:
        proc.wait_polling()
    asset = await ingest_upload(
        worker_services,
        temporal,
        filename=f"drain-{uuid.uuid4().hex[:8]}.png",
        content_type="image/png",
        data=large_png,
    )
    busy_id = await assert_eventually(
        lambda: running_on(temporal, asset.id, "create_thumbnails"), timeout=30, interval=0.05
    )
    busy = next(p for p in procs[1:] if f"worker-media-{p.index}@{HOST}" == busy_id)
    busy.terminate()

    async def draining() -> None:
        got = busy.health()
        assert got is not None and (got[0], got[1]["status"]) == (503, "draining")

    await assert_eventually(draining, timeout=5, interval=0.05)
    assert await asyncio.to_thread(busy.wait, 60) == 0
    await result_of(temporal, asset.id)
    attempts = await activity_attempts(temporal, asset.id, "create_thumbnails")
    assert attempts == [(1, busy_id, "completed")]
    stored = await get_asset(worker_services, asset.id)
    assert stored is not None and stored.status == "ready"
    drained = [line["event"] for line in busy.logs() if line.get("logger") == "conceptor.worker"]
    assert drained[-2:] == [
        "draining: polling stopped, waiting for in-flight activities",
        "worker drained",
    ]


async def test_idle_worker_stops_at_once(
    worker_services: Settings, spawn_worker: Callable[..., WorkerProc]
) -> None:
    """SIGTERM with nothing in flight: the drain does not wait for the long poll; exit 0 < 2 s."""
    worker = spawn_worker("media", 3)
    worker.wait_polling()
    await asyncio.sleep(1)  # the pollers are parked in their long polls
    started = time.monotonic()
    worker.terminate()
    assert await asyncio.to_thread(worker.wait, 20) == 0
    assert time.monotonic() - started < 2.0
    events = [line["event"] for line in worker.logs() if line.get("logger") == "conceptor.worker"]
    assert events[-2:] == [
        "draining: polling stopped, waiting for in-flight activities",
        "worker drained",
    ]


async def test_second_worker_with_same_index_refuses(
    worker_services: Settings, spawn_worker: Callable[..., WorkerProc]
) -> None:
    """Two processes claiming worker-core-4: the second exits 1 and names the clash."""
    first = spawn_worker("core", 4)
    first.wait_polling()
    second = spawn_worker("core", 4)
    assert await asyncio.to_thread(second.wait, 30) == 1
    port = worker_port(worker_services, "core", 4)
    errors = [line["event"] for line in second.logs() if line.get("level") == "error"]
    assert errors == [f"health port 127.0.0.1:{port} is in use: is worker-core-4 already running?"]
