"""PostgreSQL activities: wait for the server, apply migrations under a lock, reset on request."""

from __future__ import annotations

import time

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from conceptor.activities.migration_plan import (
    MIGRATION_FAILED,
    MigrationFile,
    line_of,
    pending_migrations,
    read_migrations,
)
from conceptor.activities.waiting import address_of, heartbeating, wait_for
from conceptor.contracts import RESET_POSTGRES, StepResult, WaitInput
from conceptor.platform.settings import Settings

# Any constant shared by every process that migrates this database; "conceptor" in ASCII.
MIGRATION_LOCK_KEY = 0x636F6E636570746F
MIGRATIONS_TABLE = "schema_migrations"
_CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
    filename    text PRIMARY KEY,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    duration_ms integer NOT NULL
)"""


class PostgresActivities:
    """Activities bound to one settings object (the DSN and its password never leave it)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def _address(self) -> str:
        """host:port of the DSN (which may be overridden), without user or password."""
        return address_of(self.settings.postgres_dsn, 5432)

    async def _connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.settings.postgres_dsn, timeout=5)

    @activity.defn(name="wait_for_postgres")
    async def wait_for_postgres(self, wait: WaitInput) -> StepResult:
        """Until the application role can connect to its database and run a query."""

        async def probe() -> str:
            conn = await self._connect()
            try:
                return str(await conn.fetchval("SHOW server_version"))
            finally:
                await conn.close()

        return await wait_for("postgres", self._address, probe, wait)

    @activity.defn(name="migrate_postgres")
    async def migrate_postgres(self) -> StepResult:
        """Apply every pending migration in order, each in its own transaction, under a lock."""
        files = read_migrations(self.settings.migrations_dir)
        async with heartbeating():
            conn = await self._connect()
            try:
                return await _migrate_locked(conn, files, attempt=activity.info().attempt)
            finally:
                await conn.close()

    @activity.defn(name=RESET_POSTGRES)
    async def reset_postgres(self) -> int:
        """Drop and re-create the public schema (every table, the migrations record too)."""
        async with heartbeating():
            conn = await self._connect()
            try:
                await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
                try:
                    tables = await conn.fetchval(
                        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
                    )
                    async with conn.transaction():
                        await conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
                        await conn.execute("CREATE SCHEMA public")
                finally:
                    await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
            finally:
                await conn.close()
        activity.logger.info("dropped schema public with %d tables", tables)
        return int(tables)


async def _migrate_locked(
    conn: asyncpg.Connection, files: list[MigrationFile], *, attempt: int
) -> StepResult:
    # A session lock: concurrent runs (another workflow id, another worker) queue up here,
    # then find the files already recorded and apply nothing twice.
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(_CREATE_TABLE)
        rows = await conn.fetch(f"SELECT filename, checksum FROM {MIGRATIONS_TABLE}")
        applied = {row["filename"]: row["checksum"] for row in rows}
        pending = pending_migrations(files, applied)
        for migration in pending:
            await _apply(conn, migration)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    return StepResult.from_counts(
        created=[m.name for m in pending],
        updated=[],
        unchanged=[m.name for m in files if m.name in applied],
        attempts=attempt,
        detail=f"{len(pending)} applied, {len(files) - len(pending)} already applied",
    )


async def _apply(conn: asyncpg.Connection, migration: MigrationFile) -> None:
    started = time.monotonic()
    try:
        async with conn.transaction():
            await conn.execute(migration.sql)
            await conn.execute(
                f"INSERT INTO {MIGRATIONS_TABLE} (filename, checksum, duration_ms) "
                "VALUES ($1, $2, $3)",
                migration.name,
                migration.checksum,
                int((time.monotonic() - started) * 1000),
            )
    except asyncpg.PostgresError as exc:
        line = line_of(migration.sql, getattr(exc, "position", None))
        where = f" at line {line}" if line else ""
        msg = (
            f"migration {migration.name} failed{where}: {exc.sqlstate} {exc}; "
            "it was rolled back, nothing of it is applied"
        )
        raise ApplicationError(msg, type=MIGRATION_FAILED, non_retryable=True) from None
    activity.logger.info("applied migration %s", migration.name)
