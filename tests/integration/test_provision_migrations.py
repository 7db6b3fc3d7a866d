"""migrate_postgres as a reconciler against the real PostgreSQL: create, re-run and plan with
zero writes (proved by a read-only database), tables and columns no migration created
reported as drift and left alone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from conceptor.activities.postgres import PostgresActivities
from conceptor.contracts import PlanDigests, ReconcileInput, StepResult
from conceptor.platform.devservices.stack import LocalStack
from tests.integration.provision_support import (
    ProvisionEnv,
    copy_migrations,
    isolated_env,
    migration_names,
    superuser,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def env(local_stack: LocalStack, tmp_path: Path) -> AsyncIterator[ProvisionEnv]:
    migrations = copy_migrations(tmp_path)
    async with isolated_env(local_stack.settings, tmp_path, migrations_dir=migrations) as e:
        yield e


async def migrate(
    env: ProvisionEnv, *, plan: bool = False, data: ReconcileInput | None = None
) -> StepResult:
    data = ReconcileInput(plan=True) if plan else data
    activities = PostgresActivities(env.settings)
    result: StepResult = await ActivityEnvironment().run(activities.migrate_postgres, data)
    return result


@asynccontextmanager
async def read_only(env: ProvisionEnv) -> AsyncIterator[None]:
    """Every new session of the database refuses writes: a step that writes anything fails."""
    admin = await superuser(env.settings, "postgres")
    try:
        await admin.execute(
            f'ALTER DATABASE "{env.database}" SET default_transaction_read_only = on'
        )
        try:
            yield
        finally:
            await admin.execute(
                f'ALTER DATABASE "{env.database}" RESET default_transaction_read_only'
            )
    finally:
        await admin.close()


async def snapshot(env: ProvisionEnv) -> dict[str, Any]:
    """Every column of every user table (any owner) and the migrations record, byte for byte."""
    conn = await superuser(env.settings, env.database)
    try:
        columns = await conn.fetch(
            "SELECT table_schema, table_name, column_name, data_type, column_default, "
            "is_nullable FROM information_schema.columns "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2, 3"
        )
        record = []
        if await conn.fetchval("SELECT to_regclass('public.schema_migrations') IS NOT NULL"):
            record = await conn.fetch(
                "SELECT filename, checksum, applied_at, xmin::text FROM schema_migrations "
                "ORDER BY 1"
            )
    finally:
        await conn.close()
    return {"columns": [tuple(r) for r in columns], "record": [tuple(r) for r in record]}


def labels(names: list[str], sign: str = "+") -> list[str]:
    return [f"{sign}migration:{n}" for n in names]


async def test_create_then_rerun_writes_nothing(env: ProvisionEnv) -> None:
    files = migration_names()
    first = await migrate(env)
    assert first.outcome == "created"
    assert first.counts == {"created": len(files), "updated": 0, "deleted": 0, "unchanged": 0}
    assert first.changed == labels(files)
    assert first.diff is not None and first.diff.drift == []
    before = await snapshot(env)
    assert {c[1] for c in before["columns"]} >= {"accounts", "media_assets", "schema_migrations"}

    async with read_only(env):
        second = await migrate(env)

    assert second.outcome == "unchanged"
    assert second.counts == {"created": 0, "updated": 0, "deleted": 0, "unchanged": len(files)}
    assert second.changed == []
    assert await snapshot(env) == before


async def test_read_only_database_catches_a_write(env: ProvisionEnv) -> None:
    """The read-only proof can fail: applying migrations into it is refused."""
    async with read_only(env):
        with pytest.raises(Exception, match="read-only transaction"):
            await migrate(env)


async def test_plan_lists_pending_and_writes_nothing(env: ProvisionEnv) -> None:
    files = migration_names()
    empty = await snapshot(env)
    async with read_only(env):
        planned = await migrate(env, plan=True)
    assert planned.planned
    assert planned.outcome == "created"
    assert planned.changed == labels(files)
    assert planned.diff is not None
    assert [c.name for c in planned.diff.pending] == files
    assert planned.diff.desired_digest and planned.diff.live_digest
    assert await snapshot(env) == empty == {"columns": [], "record": []}

    await migrate(env)
    (env.settings.migrations_dir / "9000_notes.sql").write_text(
        "CREATE TABLE notes (id int PRIMARY KEY, body text);\n"
    )
    before = await snapshot(env)
    async with read_only(env):
        planned = await migrate(env, plan=True)
    assert planned.changed == ["+migration:9000_notes.sql"]
    assert planned.counts["unchanged"] == len(files)
    assert await snapshot(env) == before

    applied = await migrate(env)
    assert applied.outcome == "updated"  # one created, the others compared and unchanged
    assert applied.changed == ["+migration:9000_notes.sql"]
    assert ("public", "notes", "body") in {c[:3] for c in (await snapshot(env))["columns"]}


async def test_tables_and_columns_no_migration_created_are_drift(env: ProvisionEnv) -> None:
    """A table and a column added by hand, and a table another role made in its own schema
    (invisible to the application role's information_schema): named, never touched."""
    await migrate(env)
    app = await asyncpg.connect(env.settings.postgres_dsn)
    try:
        await app.execute("CREATE TABLE notes_by_hand (id int, body text)")
        await app.execute("INSERT INTO notes_by_hand VALUES (1, 'mine')")
        await app.execute("ALTER TABLE accounts ADD COLUMN nickname text")
    finally:
        await app.close()
    admin = await superuser(env.settings, env.database)
    try:
        await admin.execute("CREATE SCHEMA audit; CREATE TABLE audit.events (id int)")
    finally:
        await admin.close()
    before = await snapshot(env)
    drift = [
        "!table:audit.events",
        "!column:public.accounts.nickname",
        "!table:public.notes_by_hand",
    ]

    async with read_only(env):
        planned = await migrate(env, plan=True)
        result = await migrate(env)

    for step in (planned, result):
        assert step.outcome == "unchanged"
        assert step.changed == drift
        assert step.counts["drift"] == 3
    assert "3 not created by any migration (left alone)" in result.detail
    assert await snapshot(env) == before
    app = await asyncpg.connect(env.settings.postgres_dsn)
    try:
        assert await app.fetchval("SELECT body FROM notes_by_hand WHERE id = 1") == "mine"
    finally:
        await app.close()


async def test_migrations_naming_public_are_replayed_apart(env: ProvisionEnv) -> None:
    """A migration that writes `public.` explicitly: its objects are not drift, and replaying it
    to learn what migrations create never touched the live database (nor left a database)."""
    (env.settings.migrations_dir / "9001_explicit.sql").write_text(
        "CREATE TABLE public.explicit_one (id int);\n"
        "ALTER TABLE public.accounts ADD COLUMN explicit_col text;\n"
        "DO $$ BEGIN EXECUTE 'CREATE TABLE public.made_in_do (id int)'; END $$;\n"
    )
    first = await migrate(env)
    second = await migrate(env)
    assert first.outcome == "created"
    assert first.diff is not None and first.diff.drift == []
    assert second.outcome == "unchanged" and second.changed == []
    admin = await superuser(env.settings, "postgres")
    try:
        left = await admin.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE $1", f"{env.database}__shadow%"
        )
    finally:
        await admin.close()
    assert left == []


def test_shipped_migrations_are_listed() -> None:
    """Guard for the tests above: they need at least two shipped files."""
    assert len(migration_names()) >= 2


async def test_a_plan_is_applied_only_while_nothing_moved(env: ProvisionEnv) -> None:
    """A saved plan whose database moved since is refused before any write."""
    planned = await migrate(env, plan=True)
    assert planned.diff is not None
    saw = PlanDigests(
        desired_digest=planned.diff.desired_digest, live_digest=planned.diff.live_digest
    )
    app = await asyncpg.connect(env.settings.postgres_dsn)
    try:
        await app.execute("CREATE TABLE made_meanwhile (id int)")
    finally:
        await app.close()
    before = await snapshot(env)

    with pytest.raises(ApplicationError) as info:
        await migrate(env, data=ReconcileInput(expected=saw))

    assert info.value.type == "StalePlan" and info.value.non_retryable
    assert await snapshot(env) == before
    planned = await migrate(env, plan=True)
    assert planned.changed[-1] == "!table:public.made_meanwhile"
    assert planned.diff is not None
    saw = PlanDigests(
        desired_digest=planned.diff.desired_digest, live_digest=planned.diff.live_digest
    )
    applied = await migrate(env, data=ReconcileInput(expected=saw))
    assert applied.changed == [*labels(migration_names()), "!table:public.made_meanwhile"]


async def test_a_throwaway_database_left_by_a_dead_worker_is_dropped(env: ProvisionEnv) -> None:
    admin = await superuser(env.settings, "postgres")
    leftover = f"{env.database}__shadow_deadbeef"
    try:
        await admin.execute(f'CREATE DATABASE "{leftover}" OWNER "{env.settings.postgres_user}"')
        # A file set no replay has seen yet, so this run replays rather than reuses.
        (env.settings.migrations_dir / "9002_fresh.sql").write_text(
            "CREATE TABLE fresh (id int);\n"
        )
        result = await migrate(env)
        left = await admin.fetch(
            "SELECT datname FROM pg_database WHERE left(datname, $1) = $2",
            len(env.database) + 9,
            f"{env.database}__shadow_",
        )
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{leftover}"')
        await admin.close()
    assert result.outcome == "created"
    assert left == []
