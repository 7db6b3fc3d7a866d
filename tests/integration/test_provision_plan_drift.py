"""Plans, saved plans and the drift watch against the real servers (PostgreSQL, MinIO,
Keycloak, Temporal): a plan writes nothing and names exactly what changed, a stale plan is
refused whole, the drift watch reports drift by name, repairs it when asked, and heals a
service that lost its data."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client, WorkflowFailureError

from conceptor.activities.bucket_policy import policy_document
from conceptor.client.plan import DriftStatus, Plan, apply_selection, drift_status, make_plan
from conceptor.client.provisioning import start_provision
from conceptor.contracts import ProvisionResult
from conceptor.platform.devservices.stack import LocalStack
from conceptor.platform.keycloak_tokens import admin_token
from conceptor.platform.s3 import s3_client
from conceptor.platform.temporal import connect
from tests.helpers import assert_eventually
from tests.integration.provision_support import (
    ProvisionEnv,
    bucket_policies,
    copy_migrations,
    database_snapshot,
    decoded_history_text,
    in_process_worker,
    isolated_env,
    realm_export,
)

pytestmark = pytest.mark.integration

PROBE_MIGRATION = "0099_plan_probe.sql"
PROBE_ROLE = "plan-auditor"


async def provision(client: Client, env: ProvisionEnv) -> ProvisionResult:
    handle = await start_provision(
        client, workflow_id=f"provision-{uuid.uuid4()}", task_queue=env.queue
    )
    return await handle.result()


async def plan_of(client: Client, env: ProvisionEnv) -> Plan:
    return await make_plan(client, task_queue=env.queue, workflow_id=f"plan-{uuid.uuid4()}")


async def apply_saved(client: Client, env: ProvisionEnv, plan: Plan) -> Any:
    """Start applying exactly `plan`, as `conceptor provision --apply` does."""
    steps, expected = apply_selection(plan)
    return await start_provision(
        client,
        steps=steps,
        expected=expected,
        workflow_id=f"apply-{uuid.uuid4()}",
        task_queue=env.queue,
    )


def pending(plan: Plan) -> set[tuple[str, str, str, str]]:
    return {
        (r.step, r.kind, r.name, r.action)
        for r in plan.changes
        if r.action in ("create", "update", "delete")
    }


def add_realm_role(env: ProvisionEnv, name: str) -> None:
    path = env.settings.realm_file
    realm = json.loads(path.read_text())
    realm.setdefault("roles", {}).setdefault("realm", []).append(
        {"name": name, "description": "added to the file by a test"}
    )
    path.write_text(json.dumps(realm, indent=2))


def add_migration(env: ProvisionEnv) -> None:
    (env.settings.migrations_dir / PROBE_MIGRATION).write_text(
        "CREATE TABLE plan_probe (id integer PRIMARY KEY);\n"
    )


async def make_private_bucket_public(env: ProvisionEnv) -> None:
    bucket = env.private_bucket
    policy = policy_document(bucket, "public-read")
    async with s3_client(env.settings) as s3:
        await s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))


async def admin(env: ProvisionEnv, method: str, path: str) -> httpx.Response:
    s = env.settings
    async with httpx.AsyncClient(timeout=30) as http:
        headers = {"Authorization": f"Bearer {await admin_token(s, http)}"}
        return await http.request(
            method, f"{s.keycloak_url}/admin/realms/{env.realm}{path}", headers=headers
        )


async def delete_user(env: ProvisionEnv) -> str:
    users = (await admin(env, "GET", "/users?briefRepresentation=true")).json()
    victim = sorted(u["username"] for u in users)[0]
    uid = next(u["id"] for u in users if u["username"] == victim)
    assert (await admin(env, "DELETE", f"/users/{uid}")).status_code == 204
    return str(victim)


async def user_exists(env: ProvisionEnv, username: str) -> bool:
    found = (await admin(env, "GET", f"/users?username={username}&exact=true")).json()
    return bool(found)


async def drop_table(env: ProvisionEnv, table: str) -> None:
    conn = await asyncpg.connect(env.settings.postgres_dsn)
    try:
        await conn.execute(f"DROP TABLE {table}")
    finally:
        await conn.close()


async def table_exists(env: ProvisionEnv, table: str) -> bool:
    conn = await asyncpg.connect(env.settings.postgres_dsn)
    try:
        return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table))
    finally:
        await conn.close()


async def check_drift(client: Client, env: ProvisionEnv, timeout: float = 240) -> DriftStatus:
    """Trigger the environment's drift-watch schedule once and wait for that check's report."""
    schedule_id = env.settings.drift_watch_schedule_id
    before = await drift_status(client, schedule_id=schedule_id)
    # A schedule names each run after the second it starts in: a trigger within the same
    # second as the previous run would get its workflow id, and Temporal would drop it.
    if before.latest_workflow_id:
        stamp = before.latest_workflow_id[-20:]  # ...-run-2026-11-30T02:41:39Z
        started = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        wait = (started + timedelta(seconds=1.2) - datetime.now(UTC)).total_seconds()
        await asyncio.sleep(max(wait, 0.0))
    await client.get_schedule_handle(schedule_id).trigger()

    async def finished() -> DriftStatus:
        status = await drift_status(client, schedule_id=schedule_id)
        assert status.latest is not None, "no drift check has finished yet"
        assert status.latest_workflow_id != before.latest_workflow_id, "no new check yet"
        return status

    return await assert_eventually(finished, timeout=timeout, interval=1)


def drifted(status: DriftStatus) -> set[tuple[str, str, str, str]]:
    assert status.latest is not None
    return {(i.step, i.kind, i.name, i.action) for i in status.latest.items}


@pytest.fixture
async def client(local_stack: LocalStack) -> Client:
    return await connect(local_stack.settings)


@pytest.fixture
async def env(local_stack: LocalStack, tmp_path: Path) -> AsyncIterator[ProvisionEnv]:
    migrations = copy_migrations(tmp_path)
    async with isolated_env(
        local_stack.settings, tmp_path, migrations_dir=migrations, drift_interval_seconds=3600.0
    ) as environment:
        yield environment


async def test_plan_names_exactly_the_edits_and_writes_nothing(
    client: Client, env: ProvisionEnv
) -> None:
    async with in_process_worker(client, env):
        await provision(client, env)
        assert not (await plan_of(client, env)).has_changes, "a fresh environment has no plan"

        add_realm_role(env, PROBE_ROLE)
        add_migration(env)
        await make_private_bucket_public(env)
        before = (await realm_export(env), await bucket_policies(env), await database_snapshot(env))
        plan = await plan_of(client, env)
        after = (await realm_export(env), await bucket_policies(env), await database_snapshot(env))

        assert pending(plan) == {
            ("import_realm", "role", PROBE_ROLE, "create"),
            ("migrate_postgres", "migration", PROBE_MIGRATION, "create"),
            ("ensure_buckets", "bucket", env.private_bucket, "update"),
        }
        bucket_row = next(r for r in plan.changes if r.step == "ensure_buckets")
        assert bucket_row.fields == ["policy"]
        assert after == before, "the plan wrote something"

        # Applying exactly that plan makes it come true; a new plan then has nothing to do.
        await (await apply_saved(client, env, plan)).result()
        assert not (await plan_of(client, env)).has_changes
        assert PROBE_ROLE in json.dumps((await realm_export(env))["realm"].get("roles", {}))


async def test_a_stale_plan_is_refused_whole_before_any_write(
    client: Client, env: ProvisionEnv
) -> None:
    async with in_process_worker(client, env):
        await provision(client, env)
        add_realm_role(env, PROBE_ROLE)
        plan = await plan_of(client, env)
        assert ("import_realm", "role", PROBE_ROLE, "create") in pending(plan)

        await make_private_bucket_public(env)  # the live state moves on after the plan
        realm_before = await realm_export(env)
        handle = await apply_saved(client, env, plan)
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        message = str(getattr(failure.value.cause, "message", failure.value.cause))
        assert "the plan is stale" in message and "ensure_buckets (live state changed)" in message
        # Not even the realm step, whose own state did not move, wrote anything.
        assert await realm_export(env) == realm_before


async def test_drift_watch_names_drift_and_leaves_it_without_repair(
    client: Client, env: ProvisionEnv
) -> None:
    async with in_process_worker(client, env):
        await provision(client, env)
        clean = await check_drift(client, env)
        assert clean.latest is not None and not clean.latest.has_drift, clean.latest

        user = await delete_user(env)
        await make_private_bucket_public(env)
        await drop_table(env, "media_assets")
        status = await check_drift(client, env)

        assert {
            ("import_realm", "user", user, "create"),
            ("ensure_buckets", "bucket", env.private_bucket, "update"),
            ("migrate_postgres", "table", "public.media_assets", "create"),
        } <= drifted(status)
        assert status.latest is not None and status.latest.repair_workflow_id is None
        assert not await user_exists(env, user), "drift was repaired without CENTRAL_DRIFT_REPAIR"
        assert not await table_exists(env, "media_assets"), "repaired without CENTRAL_DRIFT_REPAIR"
        assert all(label in status.since for label in (i.label for i in status.latest.items))


async def test_drift_watch_repairs_drift_when_asked(
    local_stack: LocalStack, client: Client, tmp_path: Path
) -> None:
    async with (
        isolated_env(
            local_stack.settings, tmp_path, drift_interval_seconds=3600.0, drift_repair=True
        ) as env,
        in_process_worker(client, env),
    ):
        await provision(client, env)
        policies = await bucket_policies(env)
        schema = await database_snapshot(env)
        user = await delete_user(env)
        await make_private_bucket_public(env)
        await drop_table(env, "media_assets")
        status = await check_drift(client, env)
        assert status.latest is not None and status.latest.repaired, status.latest
        assert {
            ("import_realm", "user", user, "create"),
            ("ensure_buckets", "bucket", env.private_bucket, "update"),
            ("migrate_postgres", "table", "public.media_assets", "create"),
        } <= drifted(status)
        assert await user_exists(env, user)
        assert await bucket_policies(env) == policies
        assert await database_snapshot(env) == schema  # the table is back, column for column
        # The next check finds nothing left: the repair is judged against the live state.
        again = await check_drift(client, env)
        assert again.latest is not None and not again.latest.has_drift, again.latest


async def test_a_service_that_lost_its_data_is_healed_without_repair(
    client: Client, env: ProvisionEnv
) -> None:
    """The environment's database loses every table (as after a wiped data directory): the
    next check heals only that chain, and the repair run's details say why it ran."""
    async with in_process_worker(client, env):
        await provision(client, env)
        conn = await asyncpg.connect(env.settings.postgres_dsn)
        try:
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        finally:
            await conn.close()
        status = await check_drift(client, env)
        report = status.latest
        assert report is not None and report.data_loss == ["postgres"], report
        assert report.repaired and report.repair_workflow_id
        snapshot = await database_snapshot(env)
        assert [m[0] for m in snapshot["migrations"]], "migrations were not re-applied"
        repair = client.get_workflow_handle(report.repair_workflow_id)
        history = await repair.fetch_history()
        assert "data loss in postgres" in decoded_history_text(history.to_json())


async def test_buckets_that_lost_their_data_are_healed_without_repair(
    client: Client, env: ProvisionEnv
) -> None:
    async with in_process_worker(client, env):
        await provision(client, env)
        policies = await bucket_policies(env)
        async with s3_client(env.settings) as s3:
            for bucket in env.buckets:
                await s3.delete_bucket(Bucket=bucket)
        status = await check_drift(client, env)
        report = status.latest
        assert report is not None and report.data_loss == ["minio"], report
        assert report.repaired
        assert await bucket_policies(env) == policies


async def test_a_realm_that_lost_its_data_is_healed_without_repair(
    client: Client, env: ProvisionEnv
) -> None:
    async with in_process_worker(client, env):
        await provision(client, env)
        before = await realm_export(env)
        assert (await admin(env, "DELETE", "")).status_code == 204
        status = await check_drift(client, env)
        report = status.latest
        assert report is not None and report.data_loss == ["keycloak"], report
        assert report.repaired
        after = await realm_export(env)
        assert sorted(u["username"] for u in after["users"]) == sorted(
            u["username"] for u in before["users"]
        )
        assert not (await plan_of(client, env)).has_changes
