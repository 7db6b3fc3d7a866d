"""The provisioning graph derives from the environment file, on the real servers: each database
its own chain (a failing migration holds back no other database), a second realm imported and
re-run unchanged, a team's steps (code outside `conceptor/`) run after what they name, and a
step that plans appears in the plan."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import suppress
from pathlib import Path

import asyncpg
import httpx
import pytest
from temporalio.client import Client, WorkflowFailureError

from conceptor.client.plan import apply_selection, make_plan
from conceptor.client.provisioning import provision_status, start_provision
from conceptor.contracts import ProvisionResult
from conceptor.platform.devservices.stack import LocalStack
from conceptor.platform.environment import FILE_VARIABLE
from conceptor.platform.keycloak_tokens import admin_token
from conceptor.platform.temporal import connect
from tests.integration.provision_support import (
    MIGRATIONS,
    ProvisionEnv,
    in_process_worker,
    isolated_env,
    superuser,
)

pytestmark = pytest.mark.integration

# A team's module, outside `conceptor/`: a plain step that records what it saw when it ran,
# and a step that plans (topics kept in a JSON file next to the environment file).
TEAM_MODULE = '''
import json

import asyncpg

from conceptor.activities.custom_steps import diff_objects


async def stamp(ctx):
    """Record the tables of the billing database as this step finds them."""
    conn = await asyncpg.connect(ctx.settings.postgres_dsn.rsplit("/", 1)[0] + "/BILLING")
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    (ctx.folder / "stamp.json").write_text(json.dumps(sorted(r["tablename"] for r in rows)))
    return "stamped"


def never(ctx):
    (ctx.folder / "never.json").write_text("ran")


class Topics:
    def desired(self, ctx):
        return {"orders": {"partitions": 3}, "invoices": {"partitions": 1}}

    def live(self, ctx):
        path = ctx.folder / "topics.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def diff(self, desired, live):
        return diff_objects("topic", desired, live)

    def apply(self, ctx, changes):
        live = self.live(ctx)
        for change in changes:
            live[change.name] = self.desired(ctx)[change.name]
        (ctx.folder / "topics.json").write_text(json.dumps(live))


TOPICS = Topics()
'''


@pytest.fixture
async def env(local_stack: LocalStack, tmp_path: Path) -> AsyncIterator[ProvisionEnv]:
    async with isolated_env(local_stack.settings, tmp_path / "env") as environment:
        yield environment


def write_environment(
    folder: Path, env: ProvisionEnv, tag: str, *, databases: str, realms: str, steps: str
) -> Path:
    """An environment file whose first database and realm are the test's isolated ones."""
    file = folder / "environment.yaml"
    file.write_text(
        f"""apiVersion: conceptor/v1
databases:
  - name: {env.database}
    migrations: {MIGRATIONS}
{databases}
realms:
  - name: {env.realm}
    file: {env.settings.realm_file}
{realms}
queues:
  - name: core
    declaration: conceptor.workers.declarations:CORE
steps:
{steps}
"""
    )
    return file


def migrations(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    for name, sql in files.items():
        (folder / name).write_text(sql)
    return folder


async def drop_databases(env: ProvisionEnv, names: list[str], roles: list[str]) -> None:
    conn = await superuser(env.settings)
    try:
        for name in names:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        for role in roles:
            await conn.execute(f'DROP ROLE IF EXISTS "{role}"')
    finally:
        await conn.close()


async def run(client: Client, env: ProvisionEnv, steps: list[str] | None = None) -> str:
    """Provision; the workflow's id (its result or failure is read by the caller)."""
    workflow_id = f"provision-{uuid.uuid4()}"
    handle = await start_provision(
        client, steps=steps, workflow_id=workflow_id, task_queue=env.queue
    )
    with suppress(WorkflowFailureError):
        await handle.result()
    return workflow_id


async def test_failing_database_holds_back_no_other(
    env: ProvisionEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two declared databases, one whose second migration fails: the other is created (owned
    by its declared role) and migrated, the team's step after it runs and sees its table, the
    team's step after the failing one is skipped naming it."""
    tag = uuid.uuid4().hex[:8]
    broken, billing, owner = f"broken_{tag}", f"billing_{tag}", f"billing_owner_{tag}"
    folder = tmp_path / "stack"
    bad = migrations(
        folder / "broken",
        {"0001_a.sql": "CREATE TABLE a (id int);", "0002_b.sql": "CREATE TABLE b (id int"},
    )
    good = migrations(folder / "billing", {"0001_invoices.sql": "CREATE TABLE invoices (id int);"})
    module = f"team_steps_{tag}"
    (folder / f"{module}.py").write_text(TEAM_MODULE.replace("BILLING", billing))
    file = write_environment(
        folder,
        env,
        tag,
        databases=f"""  - name: {broken}
    migrations: {bad.name}
  - name: {billing}
    migrations: [{good.name}]
    owner: {owner}""",
        realms="",
        steps=f"""  - name: stamp
    run: {module}:stamp
    after: [migrate_postgres:{billing}]
  - name: after_broken
    run: {module}:never
    after: [migrate_postgres:{broken}]""",
    )
    monkeypatch.setenv(FILE_VARIABLE, str(file))
    client = await connect(env.settings)
    steps = [
        "wait_for_postgres",
        f"migrate_postgres:{broken}",
        f"migrate_postgres:{billing}",
        "stamp",
        "after_broken",
    ]
    try:
        async with in_process_worker(client, env):
            workflow_id = await run(client, env, steps)
            status = await provision_status(client, workflow_id=workflow_id)
            # The billing database reconciles like the application's: a table its migration
            # made is dropped, the plan names it, provisioning rebuilds it.
            dropped = await asyncpg.connect(
                env.settings.postgres_dsn.rsplit("/", 1)[0] + f"/{billing}"
            )
            try:
                await dropped.execute("DROP TABLE invoices")
            finally:
                await dropped.close()
            billing_steps = ["wait_for_postgres", f"migrate_postgres:{billing}"]
            plan = await make_plan(
                client,
                steps=billing_steps,
                task_queue=env.queue,
                workflow_id=f"plan-{uuid.uuid4()}",
            )
            assert [(r.step, r.kind, r.name, r.action, r.fields) for r in plan.changes] == [
                (f"migrate_postgres:{billing}", "table", "public.invoices", "create", ["missing"])
            ]
            handle = await start_provision(
                client,
                steps=billing_steps,
                workflow_id=f"provision-{uuid.uuid4()}",
                task_queue=env.queue,
            )
            rebuilt = (await handle.result()).steps[f"migrate_postgres:{billing}"]
            assert rebuilt.changed == ["+table:public.invoices"]
            assert "1 missing rebuilt" in rebuilt.detail
        states = {s.step: (s.state, s.error) for s in status.steps}
        assert status.state == "failed"
        assert states[f"migrate_postgres:{broken}"][0] == "failed"
        assert "migration 0002_b.sql failed" in (states[f"migrate_postgres:{broken}"][1] or "")
        assert states[f"migrate_postgres:{billing}"] == ("completed", None)
        assert states["stamp"] == ("completed", None)
        assert states["after_broken"] == (
            "skipped",
            f"not run: migrate_postgres:{broken} failed",
        )
        # Not selected: skipped, never run.
        assert states["migrate_postgres"] == ("skipped", None)
        assert states["import_realm"] == ("skipped", None)
        by_step = {s.step: s for s in status.steps}
        billing_result = by_step[f"migrate_postgres:{billing}"].result
        assert billing_result is not None
        assert billing_result.changed == ["+migration:0001_invoices.sql"]
        assert by_step["stamp"].result is not None
        assert by_step["stamp"].result.detail == "runs every time, not planned: stamped"
        # The step after billing's migration saw its table: it ran after it.
        assert json.loads((folder / "stamp.json").read_text()) == ["invoices", "schema_migrations"]
        assert not (folder / "never.json").exists()
        conn = await superuser(env.settings)
        try:
            owned = await conn.fetchval(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", billing
            )
            assert owned == owner
        finally:
            await conn.close()
        billing_conn = await asyncpg.connect(
            env.settings.postgres_dsn.rsplit("/", 1)[0] + f"/{billing}"
        )
        try:
            tables = await billing_conn.fetch(
                "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public' "
                "ORDER BY tablename"
            )
        finally:
            await billing_conn.close()
        assert [(r["tablename"], r["tableowner"]) for r in tables] == [
            ("invoices", owner),
            ("schema_migrations", owner),
        ]
    finally:
        await drop_databases(env, [broken, billing], [owner])


async def test_second_realm_and_planning_step(
    env: ProvisionEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second realm, its placeholder from the environment, is imported and re-run unchanged;
    a team's step that plans shows in the plan, is applied, then plans nothing; a plain one
    is shown as not planned."""
    tag = uuid.uuid4().hex[:8]
    partners = f"partners-{tag}"
    folder = tmp_path / "stack"
    folder.mkdir()
    (folder / "partners.json").write_text(
        json.dumps({"realm": partners, "enabled": True, "displayName": "${PARTNERS_TITLE}"})
    )
    monkeypatch.setenv("PARTNERS_TITLE", f"Partners {tag}")
    module = f"team_steps_{tag}"
    (folder / f"{module}.py").write_text(TEAM_MODULE.replace("BILLING", env.database))
    file = write_environment(
        folder,
        env,
        tag,
        databases="",
        realms=f"""  - name: {partners}
    file: partners.json""",
        steps=f"""  - name: topics
    run: {module}:TOPICS
    after: [wait_for_redis]
  - name: stamp
    run: {module}:stamp
    after: [topics]""",
    )
    monkeypatch.setenv(FILE_VARIABLE, str(file))
    client = await connect(env.settings)
    chosen = ["wait_for_keycloak", f"import_realm:{partners}", "wait_for_redis", "topics", "stamp"]
    try:
        async with in_process_worker(client, env):
            plan = await make_plan(
                client, steps=chosen, task_queue=env.queue, workflow_id=f"plan-{uuid.uuid4()}"
            )
            rows = {(r.step, r.kind, r.name, r.action) for r in plan.changes}
            assert ("topics", "topic", "orders", "create") in rows
            assert ("topics", "topic", "invoices", "create") in rows
            assert (f"import_realm:{partners}", "realm", partners, "create") in rows
            assert not (folder / "topics.json").exists()  # a plan writes nothing
            assert not (folder / "stamp.json").exists()
            steps, expected = apply_selection(plan)
            assert set(expected) == {f"import_realm:{partners}", "topics"}
            assert steps == sorted(
                ["wait_for_keycloak", f"import_realm:{partners}", "wait_for_redis", "topics"]
            )

            handle = await start_provision(
                client, steps=chosen, workflow_id=f"provision-{uuid.uuid4()}", task_queue=env.queue
            )
            first: ProvisionResult = await handle.result()
            assert first.steps[f"import_realm:{partners}"].outcome == "created"
            assert first.steps["topics"].outcome == "created"
            assert first.steps["topics"].changed == ["+topic:orders", "+topic:invoices"]
            assert json.loads((folder / "topics.json").read_text()) == {
                "orders": {"partitions": 3},
                "invoices": {"partitions": 1},
            }
            assert (folder / "stamp.json").exists()

            handle = await start_provision(
                client, steps=chosen, workflow_id=f"provision-{uuid.uuid4()}", task_queue=env.queue
            )
            again: ProvisionResult = await handle.result()
            assert again.steps[f"import_realm:{partners}"].outcome == "unchanged"
            assert again.steps[f"import_realm:{partners}"].counts["created"] == 0
            assert again.steps["topics"].outcome == "unchanged"

            replan = await make_plan(
                client, steps=chosen, task_queue=env.queue, workflow_id=f"plan-{uuid.uuid4()}"
            )
            assert replan.changes == []
            assert not replan.has_changes
            assert "stamp" not in replan.digests  # a plain step does not plan
        async with httpx.AsyncClient(timeout=30) as http:
            s = env.settings
            token = await admin_token(s, http)
            got = await http.get(
                f"{s.keycloak_url}/admin/realms/{partners}",
                headers={"Authorization": f"Bearer {token}"},
            )
            assert got.status_code == 200
            assert got.json()["displayName"] == f"Partners {tag}"
    finally:
        async with httpx.AsyncClient(timeout=30) as http:
            s = env.settings
            token = await admin_token(s, http)
            await http.delete(
                f"{s.keycloak_url}/admin/realms/{partners}",
                headers={"Authorization": f"Bearer {token}"},
            )
