"""The schema migrations create: replayed into a throwaway database and read back (cached)."""

from __future__ import annotations

import asyncio
import uuid
import weakref
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import asyncpg
from temporalio.exceptions import ApplicationError

from conceptor.activities.migration_plan import (
    MIGRATION_FAILED,
    MigrationFile,
    Schema,
    labels,
    line_of,
)
from conceptor.activities.reconcile import digest
from conceptor.activities.schema_catalog import Restore, read_schema, read_schema_and_restore
from conceptor.platform.settings import Settings

SHADOW_UNAVAILABLE = "ShadowDatabaseUnavailable"
# Advisory lock class of replays, taken on the maintenance database ("shad" in ASCII).
SHADOW_LOCK_KEY = 0x73686164


@dataclass(frozen=True)
class ExpectedSchema:
    """What the replayed migrations create: the schema, the statements that rebuild each of
    its objects, and which migration created each (by change label)."""

    schema: Schema
    restore: Restore
    sources: dict[str, str]


# Expected schemas by (server, replayed files): a pure function of both, so one worker builds
# each once; the lock keeps concurrent steps in one process from building it twice.
_CACHE: dict[str, ExpectedSchema] = {}
# One lock per event loop: an asyncio lock may only be awaited in the loop it first waited in.
_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def superuser_dsn(settings: Settings) -> str:
    """The application's server and port, as the superuser, on the maintenance database."""
    parts = urlsplit(settings.postgres_dsn)
    password = quote(settings.postgres_superuser_password.get_secret_value(), safe="")
    port = f":{parts.port}" if parts.port else ""
    return f"postgresql://postgres:{password}@{parts.hostname}{port}/postgres"


def _app_dsn(settings: Settings, database: str) -> str:
    return urlsplit(settings.postgres_dsn)._replace(path=f"/{database}").geturl()


async def expected_schema(settings: Settings, files: list[MigrationFile]) -> ExpectedSchema:
    """The schema `files` create, replayed in order into a fresh database owned by
    the application role (so they run with its privileges, and `public.` in a file means that
    database's public), read back, and the database dropped.

    A throwaway database rather than a throwaway schema: a migration naming `public`
    explicitly would otherwise write into the live schema. Replaying rather than parsing the
    SQL: DO blocks, functions, CREATE TABLE AS and ALTERs are understood by PostgreSQL alone.
    """
    if not files:
        return ExpectedSchema({}, Restore(), {})
    parts = urlsplit(settings.postgres_dsn)
    key = digest([parts.hostname, parts.port, [(m.name, m.checksum) for m in files]])
    lock = _LOCKS.setdefault(asyncio.get_running_loop(), asyncio.Lock())
    async with lock:
        if key not in _CACHE:
            _CACHE[key] = await _replay(settings, files)
        return _CACHE[key]


async def _replay(settings: Settings, files: list[MigrationFile]) -> ExpectedSchema:
    live_db = urlsplit(settings.postgres_dsn).path.lstrip("/")
    prefix = f"{live_db[:40]}__shadow_"
    shadow = f"{prefix}{uuid.uuid4().hex[:8]}"
    try:
        admin = await asyncpg.connect(superuser_dsn(settings), timeout=5)
    except asyncpg.PostgresError as exc:  # refused login: retrying cannot help (OSError can)
        msg = (
            f"cannot build the throwaway database that tells which tables the migrations "
            f"create (as the postgres superuser, CENTRAL_POSTGRES_SUPERUSER_PASSWORD): {exc}"
        )
        raise ApplicationError(msg, type=SHADOW_UNAVAILABLE, non_retryable=True) from None
    try:
        # Replays of one database take turns, across workers: whoever holds the lock and finds
        # a throwaway database of it knows its builder died mid-way, and drops it.
        await admin.execute("SELECT pg_advisory_lock($1, hashtext($2))", SHADOW_LOCK_KEY, live_db)
        stale = await admin.fetch(
            "SELECT datname FROM pg_database WHERE left(datname, $1) = $2", len(prefix), prefix
        )
        for row in stale:
            await admin.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
        owner = urlsplit(settings.postgres_dsn).username or settings.postgres_user
        await admin.execute(f'CREATE DATABASE "{shadow}" OWNER "{owner}"')
        try:
            conn = await asyncpg.connect(_app_dsn(settings, shadow), timeout=5)
            try:
                # Which file made each object: a catalog read after each file, a few ms each;
                # after the last one, the full read that also gives the rebuild statements.
                sources: dict[str, str] = {}
                for migration in files:
                    await _replay_one(conn, migration)
                    if migration is files[-1]:
                        schema, restore = await read_schema_and_restore(conn)
                    else:
                        schema = await read_schema(conn)
                    for label in labels(schema) - sources.keys():
                        sources[label] = migration.name
                return ExpectedSchema(schema, restore, sources)
            finally:
                await conn.close()
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{shadow}" WITH (FORCE)')
    finally:
        await admin.close()  # also releases the advisory lock


async def _replay_one(conn: asyncpg.Connection, migration: MigrationFile) -> None:
    try:
        async with conn.transaction():
            await conn.execute(migration.sql)
    except asyncpg.PostgresError as exc:
        line = line_of(migration.sql, getattr(exc, "position", None))
        where = f" at line {line}" if line else ""
        msg = (
            f"migration {migration.name} is recorded as applied but fails when replayed into "
            f"a fresh database{where}: {exc.sqlstate} {exc}; reset-postgres would fail the "
            "same way: fix it in a new migration"
        )
        raise ApplicationError(msg, type=MIGRATION_FAILED, non_retryable=True) from None
