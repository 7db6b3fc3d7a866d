"""Self-healing under a running Tilt stack: a service that comes back without its data is
provisioned again by the drift watch, by itself, while the API and the workers keep running.

For PostgreSQL, MinIO and Keycloak in turn: `tilt disable localdev-<svc>`, `conceptor dev
reset <svc>` (its data directory wiped), `tilt enable localdev-<svc>`; then a DriftWatchWorkflow
run reports the data loss and its repair run (only that service's chain, saying why it ran)
restores the state; the API's and the workers' processes are the same ones throughout.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client, WorkflowFailureError

from conceptor.client.provisioning import provision_status
from conceptor.contracts import DRIFT_WATCH_WORKFLOW, DriftReport
from conceptor.platform.devservices.launcher import port_in_use
from conceptor.platform.queues import worker_port
from conceptor.platform.settings import REPO_ROOT, Settings
from conceptor.platform.temporal import connect
from tests.e2e.tilt_helpers import (
    free_port,
    listening_ports,
    run_tilt,
    start_tilt_up,
    stop_tilt_up,
    tilt_env,
    tilt_prefix,
)
from tests.helpers import assert_eventually, wait_until

pytestmark = pytest.mark.e2e

PREFIX = tilt_prefix("459")  # not the default 440, not another test's block
DRIFT_INTERVAL = "10"
SERVICES = ("postgres", "minio", "keycloak")


async def _healed(client: Client, service: str, since: float) -> DriftReport | None:
    """A drift check that compared after `since`, found `service` empty and repaired it."""
    query = f'WorkflowType="{DRIFT_WATCH_WORKFLOW}" AND ExecutionStatus="Completed"'
    async for run in client.list_workflows(query):
        if run.close_time is not None and run.close_time.timestamp() < since:
            break  # newest first: the rest finished before the service was wiped
        handle = client.get_workflow_handle(run.id, run_id=run.run_id, result_type=DriftReport)
        try:
            report = await handle.result()
        except WorkflowFailureError:
            continue
        # A check that began before the wipe may still see it: it waits for the service.
        if report.checked_at.timestamp() >= since and service in report.data_loss:
            return report if report.repaired else None
    return None


def _worker_pids(settings: Settings) -> dict[str, int]:
    pids = {}
    for queue in ("core", "media"):
        port = worker_port(settings, queue, 0)
        pids[queue] = int(httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=3).json()["pid"])
    return pids


def _api_answers(settings: Settings) -> bool:
    try:
        return httpx.get(
            f"http://127.0.0.1:{settings.port('api')}/api/health", timeout=3
        ).is_success
    except httpx.HTTPError:
        return False


def _provisioned(settings: Settings) -> bool:
    async def check() -> bool:
        try:
            client = await connect(settings)
        except RuntimeError:
            return False
        return (await provision_status(client)).state == "completed"

    return asyncio.run(check())


@pytest.mark.timeout(1500)
def test_each_wiped_service_is_provisioned_again_by_itself() -> None:
    settings = Settings(port_prefix=PREFIX)
    assert listening_ports(settings) == [], "the test's port block must start empty"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="conceptor-tilt-heal-") as tmp:
        localdev = Path(tmp) / "localdev"
        env = tilt_env(PREFIX, localdev, CENTRAL_DRIFT_INTERVAL_SECONDS=DRIFT_INTERVAL)
        log_path = Path(tmp) / "tilt.log"
        up = start_tilt_up(env, port, log_path)
        try:
            wait_until(
                lambda: _provisioned(settings),
                timeout=420,
                interval=2,
                message="provisioning never completed under tilt up",
            )
            wait_until(lambda: _api_answers(settings), timeout=120, interval=1)
            workers = _worker_pids(settings)
            serve_env = {**env, "TILT_PORT_PREFIX": PREFIX, "CENTRAL_LOCALDEV_DIR": str(localdev)}
            for service in SERVICES:
                started = time.time()
                resource = f"localdev-{service}"
                off = run_tilt(["disable", resource, "--port", str(port)], env, timeout=60)
                assert off.returncode == 0, off.stdout + off.stderr
                main_port = settings.port(service)
                wait_until(
                    lambda p=main_port: not port_in_use(settings.host, p),
                    timeout=120,
                    message=f"{service} still listening after tilt disable",
                )
                reset = subprocess.run(
                    [sys.executable, "-m", "conceptor", "dev", "reset", service],
                    env=serve_env,
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                assert reset.returncode == 0, reset.stdout + reset.stderr
                on = run_tilt(["enable", resource, "--port", str(port)], env, timeout=60)
                assert on.returncode == 0, on.stdout + on.stderr

                async def healed(svc: str = service, t0: float = started) -> DriftReport:
                    found = await _healed(await connect(settings), svc, t0)
                    assert found is not None, f"no drift check has healed {svc} yet"
                    return found

                report = asyncio.run(assert_eventually(healed, timeout=600, interval=3))
                assert report.data_loss == [service], report
                assert _api_answers(settings), "the API stopped answering"
            assert _worker_pids(settings) == workers, "a worker was restarted"
        finally:
            stop_tilt_up(up, timeout=120)
            artifacts = REPO_ROOT / "tests" / "artifacts"
            artifacts.mkdir(parents=True, exist_ok=True)
            (artifacts / "tilt-self-heal.log").write_bytes(log_path.read_bytes())
        down = run_tilt(["down"], env, timeout=180)
        assert down.returncode == 0, down.stdout + down.stderr
    wait_until(
        lambda: listening_ports(settings) == [],
        timeout=120,
        message=f"still listening after tilt exited: {listening_ports(settings)}",
    )
