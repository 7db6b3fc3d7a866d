"""One worker process: `conceptor worker <queue> --index i` (health, metrics, drain on SIGTERM)."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Sequence
from datetime import timedelta

from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Interceptor, Worker

from conceptor.platform.logging import get_logger
from conceptor.platform.queues import worker_port
from conceptor.platform.settings import Settings
from conceptor.platform.temporal import connect_with_retry
from conceptor.workers.declarations import QueueDeclaration
from conceptor.workers.executors import BlockingPool
from conceptor.workers.health import WorkerHealth
from conceptor.workers.logcontext import install_log_context
from conceptor.workers.registry import resolve_queue

log = get_logger("conceptor.worker")
# After the grace period the SDK cancels the activities still running and waits for them to
# stop; one that ignores cancellation (blocking work in a pool) must not hold the process and
# its port for ever. Within the pods' drain margin (k8s_manifests.DRAIN_MARGIN_SECONDS).
CANCEL_WINDOW_SECONDS = 3.0


def worker_identity(queue: str, index: int) -> str:
    return f"worker-{queue}-{index}@{socket.gethostname()}"


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _install_metrics_runtime() -> str:
    """A Temporal runtime exporting Prometheus on a private port; returns its scrape URL."""
    address = f"127.0.0.1:{_free_loopback_port()}"
    runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))
    # Clients created from here on (connect_with_retry) use this runtime.
    Runtime.set_default(runtime, error_if_already_set=False)
    return f"http://{address}/metrics"


def build_worker(
    client: Client,
    declaration: QueueDeclaration,
    settings: Settings,
    *,
    identity: str,
    pool: BlockingPool,
    interceptors: Sequence[Interceptor] = (),
) -> Worker:
    """The SDK Worker a declaration describes (also used by the benchmark's baseline)."""
    return Worker(
        client,
        task_queue=declaration.name,
        workflows=list(declaration.workflows()),
        activities=declaration.activities(settings),
        identity=identity,
        max_concurrent_activities=declaration.max_concurrent_activities(settings),
        max_concurrent_workflow_tasks=declaration.max_concurrent_workflow_tasks(settings),
        activity_executor=pool.executor,
        shared_state_manager=pool.shared_state,
        graceful_shutdown_timeout=timedelta(seconds=settings.worker_grace_period_seconds),
        interceptors=list(interceptors),
    )


async def _until_polling(worker: Worker, run_task: asyncio.Task[None]) -> None:
    # The SDK sets is_running once the namespace check passed and the pollers started.
    while not worker.is_running and not run_task.done():
        await asyncio.sleep(0.05)


async def run_worker(settings: Settings, queue: str, index: int) -> int:
    """Run until SIGTERM/SIGINT (drain, then 0) or a fatal worker error (1)."""
    # The environment file says what the queue runs: its code, concurrency and pool.
    declaration = resolve_queue(queue)
    identity = worker_identity(queue, index)
    port = worker_port(settings, queue, index)
    interceptor = install_log_context(queue=queue, identity=identity)
    health = WorkerHealth(queue=queue, index=index, identity=identity)
    health.metrics_url = _install_metrics_runtime()
    host = settings.worker_health_host or settings.host
    try:
        server = health.server(host, port).start()
    except OSError as exc:
        name = identity.split("@")[0]
        log.error(
            f"health port {host}:{port} is in use: is {name} already running?", errno=exc.errno
        )
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stop_task = asyncio.create_task(stop.wait())
    log.info("worker starting", health_port=port, temporal=settings.temporal_address)
    try:
        health.state = "waiting-for-temporal"
        connecting = asyncio.create_task(connect_with_retry(settings, identity=identity))
        await asyncio.wait({connecting, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        if not connecting.done():
            connecting.cancel()
            log.info("worker stopped before Temporal was reachable")
            return 0
        client = connecting.result()
        with BlockingPool(declaration, settings) as pool:
            worker = build_worker(
                client,
                declaration,
                settings,
                identity=identity,
                pool=pool,
                interceptors=[interceptor],
            )
            grace = settings.worker_grace_period_seconds
            return await _serve(worker, health, stop_task, pool, grace=grace)
    finally:
        health.state = "stopped"
        stop_task.cancel()
        await asyncio.to_thread(server.close)


async def _serve(
    worker: Worker,
    health: WorkerHealth,
    stop_task: asyncio.Task[bool],
    pool: BlockingPool,
    *,
    grace: float,
) -> int:
    run_task = asyncio.create_task(worker.run())
    await _until_polling(worker, run_task)
    if not run_task.done():
        health.state = "polling"
        log.info("worker polling", blocking=pool.kind, pool_size=pool.size)
    await asyncio.wait({run_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    if run_task.done():
        exc = run_task.exception()
        log.error("worker stopped on a fatal error", error=repr(exc))
        return 1
    health.state = "draining"
    log.info("draining: polling stopped, waiting for in-flight activities")
    # Nothing in flight: the SDK ends the long polls at once (no wait for them to time out).
    shutdown = asyncio.create_task(worker.shutdown())
    done, _ = await asyncio.wait({shutdown}, timeout=grace + CANCEL_WINDOW_SECONDS)
    if not done:
        shutdown.cancel()
        pool.abandon()
        log.error(
            "drain outlasted the grace period: in-flight activities are left to their retries",
            grace_seconds=grace,
        )
        return 1
    try:
        await run_task
    except Exception as exc:
        log.error("worker failed while draining", error=repr(exc))
        return 1
    log.info("worker drained")
    return 0
