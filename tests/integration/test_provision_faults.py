"""Provisioning under faults: Postgres down at start, a service past its deadline, a core
worker killed mid-run, and the reset-postgres path."""

from __future__ import annotations

import re
import socket
import uuid
from pathlib import Path

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError

from conceptor.client.provisioning import (
    provision_status,
    start_provision,
    start_reset_postgres,
)
from conceptor.contracts import CORE_QUEUE, StepProgress
from conceptor.platform.devservices.launcher import port_in_use
from conceptor.platform.devservices.stack import LocalStack
from conceptor.platform.temporal import connect
from tests.helpers import assert_eventually
from tests.integration.provision_support import (
    ARTIFACTS,
    core_workers,
    in_process_worker,
    isolated_env,
    kill,
    migration_names,
    spawn_core_worker,
    stop_service,
)
from tests.shipped import ALL_STEPS

pytestmark = pytest.mark.integration


async def _ensure_postgres(stack: LocalStack) -> None:
    if not port_in_use(stack.settings.host, stack.settings.port("postgres")):
        stack.spawn("postgres")
    await stack.wait_ready(["postgres"], timeout=90)


async def _wait_step_retrying(client: Client, handle: WorkflowHandle, min_attempts: int) -> None:  # type: ignore[type-arg]
    async def retrying() -> StepProgress:
        status = await provision_status(client, workflow_id=handle.id)
        steps = {s.step: s for s in status.steps}
        assert "wait_for_postgres" in steps, f"no progress yet: {status.state}"
        step = steps["wait_for_postgres"]
        assert step.state == "running", step
        assert step.attempts >= min_attempts, step
        return step

    await assert_eventually(retrying, timeout=60, message="wait_for_postgres never retried")


async def test_waits_for_postgres_then_completes(local_stack: LocalStack, tmp_path: Path) -> None:
    """Postgres down when provisioning starts: the step keeps trying, then completes."""
    async with isolated_env(local_stack.settings, tmp_path, deadline=120) as env:
        client = await connect(env.settings)
        stop_service(local_stack, "postgres")
        try:
            async with in_process_worker(client, env):
                handle = await start_provision(
                    client, workflow_id=f"provision-{uuid.uuid4()}", task_queue=env.queue
                )
                await _wait_step_retrying(client, handle, min_attempts=3)
                local_stack.spawn("postgres")
                await local_stack.wait_ready(["postgres"], timeout=90)
                result = await handle.result()
        finally:
            await _ensure_postgres(local_stack)
    assert result.steps["wait_for_postgres"].attempts >= 3
    assert result.outcomes["migrate_postgres"] == "created"
    assert result.outcomes["import_realm"] == "created"


def _closed_port(host: str) -> int:
    """A loopback port nothing listens on: the kernel's pick, released at once."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def test_unreachable_service_fails_at_the_deadline(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    """A service that never answers fails its step at the deadline, naming service and address."""
    settings = local_stack.settings
    dead_port = _closed_port(settings.host)
    assert not port_in_use(settings.host, dead_port)
    async with isolated_env(settings, tmp_path, deadline=3) as env:
        env.settings = env.settings.model_copy(
            update={
                "postgres_dsn_override": type(settings.postgres_password)(
                    f"postgresql://nobody:x@{settings.host}:{dead_port}/nothing"
                )
            }
        )
        client = await connect(env.settings)
        async with in_process_worker(client, env):
            # Realm creation alone takes Keycloak ~5 s: keep to steps that fit a 3 s deadline.
            handle = await start_provision(
                client,
                workflow_id=f"provision-{uuid.uuid4()}",
                task_queue=env.queue,
                steps=["wait_for_postgres", "migrate_postgres", "wait_for_redis"],
            )
            with pytest.raises(WorkflowFailureError) as info:
                await handle.result()
            status = await provision_status(client, workflow_id=handle.id)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "ProvisionFailed"
    assert re.fullmatch(
        rf"provisioning failed: wait_for_postgres: postgres at {settings.host}:{dead_port} was not "
        r"ready within the 3s deadline \(\d+ attempts?\); last error: \w+.*",
        cause.message,
    ), cause.message
    states = {s.step: s.state for s in status.steps}
    assert states == {
        **dict.fromkeys(ALL_STEPS, "skipped"),
        "wait_for_postgres": "failed",
        "wait_for_redis": "completed",
    }
    assert status.state == "failed"
    assert status.error == cause.message


async def test_killed_worker_run_finished_by_another(
    local_stack: LocalStack, stack_env: dict[str, str], tmp_path: Path
) -> None:
    """worker-core-0 killed while a step runs: worker-core-1 picks the run up and finishes it."""
    async with isolated_env(local_stack.settings, tmp_path, deadline=120) as env:
        client = await connect(env.settings)
        logs = ARTIFACTS / "workers"
        stop_service(local_stack, "postgres")
        try:
            with core_workers(stack_env, env, logs) as procs:
                procs.append(spawn_core_worker(stack_env, env, 0, logs))
                handle = await start_provision(
                    client, workflow_id=f"provision-kill-{uuid.uuid4()}", task_queue=CORE_QUEUE
                )
                await _wait_step_retrying(client, handle, min_attempts=2)
                kill(procs[0])
                procs.append(spawn_core_worker(stack_env, env, 1, logs))
                local_stack.spawn("postgres")
                await local_stack.wait_ready(["postgres"], timeout=90)
                result = await handle.result()
                history = await handle.fetch_history()
        finally:
            await _ensure_postgres(local_stack)
            if (await handle.describe()).close_time is None:  # never leave a run on `core`
                await handle.terminate("test ended")
    assert result.outcomes["migrate_postgres"] == "created"
    scheduled = {
        e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    started = {
        scheduled[a.scheduled_event_id]: (a.identity.split("@")[0], a.attempt)
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        for a in [e.activity_task_started_event_attributes]
    }
    # The step that was running when worker 0 died was retried, and finished, on worker 1.
    identity, attempt = started["wait_for_postgres"]
    assert identity == "worker-core-1"
    assert attempt >= 2
    assert started["migrate_postgres"][0] == "worker-core-1"


async def test_reset_postgres_drops_and_remigrates(local_stack: LocalStack, tmp_path: Path) -> None:
    """ResetPostgresWorkflow drops every table (data too) and applies the migrations again."""
    async with isolated_env(local_stack.settings, tmp_path) as env:
        client = await connect(env.settings)
        async with in_process_worker(client, env):
            await (
                await start_provision(
                    client,
                    workflow_id=f"provision-{uuid.uuid4()}",
                    task_queue=env.queue,
                    steps=["wait_for_postgres", "migrate_postgres"],
                )
            ).result()
            conn = await asyncpg.connect(env.settings.postgres_dsn)
            try:
                await conn.execute(
                    "INSERT INTO accounts (id, subject, username) VALUES ($1, 'sub-1', 'alice')",
                    uuid.uuid4(),
                )
                tables = await conn.fetchval(
                    "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
                )
            finally:
                await conn.close()
            handle = await start_reset_postgres(
                client, workflow_id=f"reset-{uuid.uuid4()}", task_queue=env.queue
            )
            result = await handle.result()
        conn = await asyncpg.connect(env.settings.postgres_dsn)
        try:
            accounts = await conn.fetchval("SELECT count(*) FROM accounts")
            applied = await conn.fetchval("SELECT count(*) FROM schema_migrations")
        finally:
            await conn.close()
    assert result.dropped_tables == tables
    assert result.migrations.counts["created"] == len(migration_names())
    assert (accounts, applied) == (0, len(migration_names()))
