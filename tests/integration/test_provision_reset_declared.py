"""reset-postgres per declared database, on the real servers: a second database of the
environment file is dropped and re-migrated from its own folder while the first keeps its
rows; a name the file does not declare is refused, naming the file and its databases."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from conceptor.client.provisioning import start_provision, start_reset_postgres
from conceptor.platform.devservices.stack import LocalStack
from conceptor.platform.environment import FILE_VARIABLE
from conceptor.platform.temporal import connect
from tests.integration.provision_support import ProvisionEnv, in_process_worker, isolated_env
from tests.integration.test_provision_graph import drop_databases, migrations, write_environment

pytestmark = pytest.mark.integration


@pytest.fixture
async def env(local_stack: LocalStack, tmp_path: Path) -> AsyncIterator[ProvisionEnv]:
    async with isolated_env(local_stack.settings, tmp_path / "env") as environment:
        yield environment


async def _count(dsn: str, table: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
    finally:
        await conn.close()


async def _insert(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def test_reset_one_declared_database_leaves_the_others(
    env: ProvisionEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = uuid.uuid4().hex[:8]
    billing, owner = f"billing_{tag}", f"billing_owner_{tag}"
    folder = tmp_path / "stack"
    billing_migrations = migrations(
        folder / "billing",
        {
            "0001_invoices.sql": "CREATE TABLE invoices (id int PRIMARY KEY);",
            "0002_lines.sql": "CREATE TABLE lines (id int PRIMARY KEY);",
        },
    )
    file = write_environment(
        folder,
        env,
        tag,
        databases=f"""  - name: {billing}
    migrations: {billing_migrations.name}
    owner: {owner}""",
        realms="",
        steps="  []",
    )
    monkeypatch.setenv(FILE_VARIABLE, str(file))
    first_dsn = env.settings.postgres_dsn
    billing_dsn = first_dsn.rsplit("/", 1)[0] + f"/{billing}"
    client = await connect(env.settings)
    try:
        async with in_process_worker(client, env):
            steps = ["wait_for_postgres", "migrate_postgres", f"migrate_postgres:{billing}"]
            handle = await start_provision(
                client, steps=steps, workflow_id=f"provision-{uuid.uuid4()}", task_queue=env.queue
            )
            await handle.result()
            await _insert(billing_dsn, "INSERT INTO invoices VALUES (1), (2)")
            await _insert(
                first_dsn,
                "INSERT INTO accounts (id, subject, username) "
                f"VALUES ('{uuid.uuid4()}', 'sub-1', 'alice')",
            )
            reset = await start_reset_postgres(
                client, database=billing, workflow_id=f"reset-{tag}", task_queue=env.queue
            )
            result = await reset.result()
            undeclared = await start_reset_postgres(
                client, database="nowhere", workflow_id=f"reset-x-{tag}", task_queue=env.queue
            )
            with pytest.raises(WorkflowFailureError) as refused:
                await undeclared.result()
        # The billing database: dropped (its 3 tables) and migrated again, as its owner.
        assert (result.database, result.dropped_tables) == (billing, 3)
        assert result.migrations.changed == [
            "+migration:0001_invoices.sql",
            "+migration:0002_lines.sql",
        ]
        assert await _count(billing_dsn, "invoices") == 0
        assert await _count(billing_dsn, "schema_migrations") == 2
        conn = await asyncpg.connect(billing_dsn)
        try:
            owners = await conn.fetch(
                "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public' "
                "ORDER BY tablename"
            )
        finally:
            await conn.close()
        assert [(r["tablename"], r["tableowner"]) for r in owners] == [
            ("invoices", owner),
            ("lines", owner),
            ("schema_migrations", owner),
        ]
        # The first database was not touched.
        assert await _count(first_dsn, "accounts") == 1
        # An undeclared name: refused, for good, naming the file and what it declares.
        cause = refused.value.cause
        assert isinstance(cause, ApplicationError)
        assert (cause.type, cause.non_retryable) == ("DatabaseUndeclared", True)
        assert cause.message == (
            f"reset-postgres failed: {file} declares no database 'nowhere' "
            f"(it declares {env.database}, {billing})"
        )
    finally:
        await drop_databases(env, [billing], [owner])
