"""A team's queue declared only in the environment file: its real worker runs its workflow."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import Client

from conceptor.api.pollers import all_queue_pollers
from conceptor.platform.queues import worker_port
from conceptor.platform.settings import REPO_ROOT, Settings
from conceptor.workers.runtime import worker_identity
from tests.worker_procs import CONCEPTOR, WorkerProc

pytestmark = pytest.mark.integration

# The team's code: a folder outside the `conceptor` package, next to the environment file.
TEAM_MODULE = '''\
"""Billing: the team's workflow and activity (no conceptor import needed)."""
from datetime import timedelta

from temporalio import activity, workflow


@activity.defn
async def price_invoice(lines: list[int]) -> int:
    return sum(lines) * 2


@workflow.defn
class InvoiceWorkflow:
    @workflow.run
    async def run(self, lines: list[int]) -> str:
        total = await workflow.execute_activity(
            price_invoice, lines, start_to_close_timeout=timedelta(seconds=30)
        )
        return f"invoice total {total} on {activity_queue()}"


def activity_queue() -> str:
    return workflow.info().task_queue


class BillingQueue:
    description = "the team's invoices"

    def workflows(self):
        return [InvoiceWorkflow]

    def activities(self, settings):
        return [price_invoice]


QUEUE = BillingQueue()
'''


def _environment(tmp_path: Path) -> Path:
    team = tmp_path / "billing_team"
    team.mkdir()
    (team / "__init__.py").write_text("")
    (team / "queue.py").write_text(TEAM_MODULE)
    file = tmp_path / "environment.yaml"
    file.write_text(
        "apiVersion: conceptor/v1\n"
        "queues:\n"
        "  - {name: core, declaration: conceptor.workers.declarations:CORE}\n"
        "  - {name: media, declaration: services.central.queue:MEDIA}\n"
        "  - name: billing\n"
        "    workers: 1\n"
        "    declaration: billing_team.queue:QUEUE\n"
        "    concurrency: {activities: 3, workflow_tasks: 2}\n"
    )
    return file


async def test_a_declared_team_queue_runs_its_workflow(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    worker_services: Settings,
    temporal: Client,
    stack_env: dict[str, str],
) -> None:
    """`conceptor worker billing --index 0` imports the tmp module and completes its workflow."""
    file = _environment(tmp_path)
    assert not (REPO_ROOT / "billing_team").exists()  # found only through the file's folder
    monkeypatch.setenv("CONCEPTOR_ENVIRONMENT_FILE", str(file))
    # The third queue's ports are in the second block: the next prefix's first slot.
    port = worker_port(worker_services, "billing", 0)
    assert port == (int(worker_services.port_prefix) + 1) * 100
    worker = WorkerProc(
        "billing",
        0,
        port=port,
        env={**stack_env, "CONCEPTOR_ENVIRONMENT_FILE": str(file)},
        log_dir=tmp_path / "logs",
    )
    try:
        health = worker.wait_polling(timeout=60)
        assert (health["queue"], health["index"], health["status"]) == ("billing", 0, "polling")
        result = await temporal.execute_workflow(
            "InvoiceWorkflow",
            [3, 4],
            id=f"invoice-{uuid.uuid4()}",
            task_queue="billing",
            execution_timeout=timedelta(seconds=60),
        )
        assert result == "invoice total 14 on billing"
        # The API's and panel's worker list (GET /api/workers, /api/status) has the new queue.
        queues = {q.name: q for q in await all_queue_pollers(temporal)}
        assert list(queues) == ["core", "media", "billing"]
        polling_billing = {p.identity: p.kinds for p in queues["billing"].pollers}
        assert polling_billing == {worker_identity("billing", 0): ["workflow", "activity"]}
        # `conceptor workers` says the same, with the file's count and the slot's ports.
        listed = subprocess.run(
            [str(CONCEPTOR), "workers", "--json"],
            env={**os.environ, **stack_env, "CONCEPTOR_ENVIRONMENT_FILE": str(file)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert listed.returncode == 0, listed.stderr
        rows = {r["name"]: r for r in json.loads(listed.stdout)["queues"]}
        assert list(rows) == ["core", "media", "billing"]
        billing = rows["billing"]
        assert (billing["workers"], billing["ports"], billing["declaration"]) == (
            1,
            f"{port}-{port + 19}",
            "billing_team.queue:QUEUE",
        )
        assert [p["identity"] for p in billing["pollers"]] == [worker_identity("billing", 0)]
    finally:
        worker.terminate()
    assert worker.wait(timeout=30) == 0
    polling = [line for line in worker.logs() if line.get("event") == "worker polling"]
    assert [(p["queue"], p["blocking"], p["pool_size"]) for p in polling] == [("billing", None, 0)]


def test_an_undeclared_queue_is_refused_by_the_real_cli(
    tmp_path: Path, stack_env: dict[str, str]
) -> None:
    """`conceptor worker video` exits 2 at once and names the file and the queues it has."""
    file = _environment(tmp_path)
    worker = WorkerProc(
        "video",
        0,
        port=0,
        env={**stack_env, "CONCEPTOR_ENVIRONMENT_FILE": str(file), "COLUMNS": "400"},
        log_dir=tmp_path / "logs",
    )
    assert worker.wait(timeout=60) == 2
    out = " ".join(worker.log_path.read_text().replace("│", " ").split())
    assert f"queue 'video' is not declared in {file}; it declares: core, media, billing" in out
