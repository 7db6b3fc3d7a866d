"""PostgreSQL's part of a snapshot: copies made by the server itself, swapped in by renames.

`CREATE DATABASE … TEMPLATE … STRATEGY FILE_COPY` copies a database's files without reading a
row: seconds for a gigabyte, where a dump and restore replays every row and rebuilds every
index. A copy needs its source to have no sessions, so the live database's sessions are ended
for the moment of the copy (the API's and workers' pools reconnect afterwards).

Each snapshot keeps two copies of a database: the copy (a template no one connects to) and a
spare made from it once the save has ended (`SnapshotSpareWorkflow`). A restore renames the
spare in place of the live database, in one transaction with the live one's rename away: no
byte is copied while the restore runs, and until that transaction commits the old database is
untouched. Once the restore has ended, the same workflow drops the old database and makes the
spare again. A restore that finds the spare still being made waits for it; without one (an
older snapshot, or that run failed) it copies the copy beside the live database first, then
swaps the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from conceptor.activities.declared import load_declared
from conceptor.activities.postgres import PostgresActivities, applied_migrations
from conceptor.activities.schema_shadow import superuser_dsn
from conceptor.activities.snapshot.store import copy_name, refuse, spare_name
from conceptor.platform.settings import Settings
from conceptor.snapshot_contracts import SNAPSHOT_REFUSED, DatabasePart

RESTORING = "__restoring"  # the new database while it is built, beside the live one
REPLACED = "__replaced"  # the old one between the swap and its drop (after the restore)
_BUSY_RETRIES = 50  # terminated sessions take a moment to leave


@dataclass(frozen=True)
class LiveDatabase:
    """A declared database as the server knows it."""

    declared: str
    live: str
    migrations_on_disk: list[str]
    activities: PostgresActivities


def declared_databases(settings: Settings) -> list[LiveDatabase]:
    """Every database of the environment file: the first is the settings' database."""
    env, _file = load_declared(SNAPSHOT_REFUSED)
    out: list[LiveDatabase] = []
    for i, db in enumerate(env.databases):
        pg = (
            PostgresActivities(settings)
            if i == 0
            else PostgresActivities(settings).declared(db.name)
        )
        live = urlsplit(pg.settings.postgres_dsn).path.lstrip("/")
        out.append(LiveDatabase(db.name, live, pg.migration_names(), pg))
    return out


def find(settings: Settings, declared: str) -> LiveDatabase:
    for db in declared_databases(settings):
        if db.declared == declared:
            return db
    raise refuse(f"the environment file declares no database {declared!r}")


@asynccontextmanager
async def superuser(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """The server's superuser on its maintenance database: copies, renames and drops."""
    conn = await asyncpg.connect(superuser_dsn(settings), timeout=5)
    try:
        yield conn
    finally:
        await conn.close()


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _exists(conn: asyncpg.Connection, name: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))


async def _end_sessions(conn: asyncpg.Connection, name: str) -> None:
    await conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = $1 AND pid <> pg_backend_pid()",
        name,
    )


async def _with_sessions_ended(
    conn: asyncpg.Connection, name: str, action: Callable[[], Awaitable[object]]
) -> None:
    """End the sessions on `name` and run `action` (which needs none), again while a pool
    reconnected in between. The database never stops taking connections: a step killed at
    any point (kill -9 of its worker) leaves it open, fully old or fully new."""
    for attempt in range(_BUSY_RETRIES):
        await _end_sessions(conn, name)
        try:
            await action()
            return
        except asyncpg.ObjectInUseError:
            if attempt == _BUSY_RETRIES - 1:
                raise
            await asyncio.sleep(0.05)


async def _while_busy(action: str, conn: asyncpg.Connection) -> None:
    """Run `action`, again while a terminated session has not left yet."""
    for attempt in range(_BUSY_RETRIES):
        try:
            await conn.execute(action)
            return
        except asyncpg.ObjectInUseError:
            if attempt == _BUSY_RETRIES - 1:
                raise
            await asyncio.sleep(0.1)


async def _copy(conn: asyncpg.Connection, source: str, target: str, owner: str) -> None:
    await _while_busy(
        f"CREATE DATABASE {_q(target)} TEMPLATE {_q(source)} OWNER {_q(owner)} STRATEGY FILE_COPY",
        conn,
    )


async def make_spare(conn: asyncpg.Connection, copy: str, owner: str) -> bool:
    """Make the copy's spare unless it is there; True when this call made it. A spare refuses
    connections (no one must change it before a restore renames it in)."""
    spare = spare_name(copy)
    if await _exists(conn, spare):
        return False
    try:
        await _copy(conn, copy, spare, owner)
    except asyncpg.DuplicateDatabaseError:
        return False  # made meanwhile by another run
    await conn.execute(f"ALTER DATABASE {_q(spare)} ALLOW_CONNECTIONS false")
    return True


async def _size(conn: asyncpg.Connection, name: str) -> int:
    return int(await conn.fetchval("SELECT pg_database_size($1)", name))


async def _migrations_of(db: LiveDatabase) -> list[str]:
    conn = await db.activities.connect()
    try:
        return await applied_migrations(conn)
    finally:
        await conn.close()


async def save(settings: Settings, name: str, declared: str) -> DatabasePart:
    """Copy database `declared` as snapshot `name`'s; replaces a copy a failed save left."""
    db = find(settings, declared)
    migrations = await _migrations_of(db)
    target = copy_name(name, declared)
    async with superuser(settings) as conn:
        owner = await conn.fetchval(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", db.live
        )
        if owner is None:
            raise refuse(f"database {db.live} (declared as {declared}) does not exist")
        for leftover in (spare_name(target), target):
            if await _exists(conn, leftover):
                await _while_busy(f"DROP DATABASE {_q(leftover)} WITH (FORCE)", conn)
        started = time.monotonic()
        await _with_sessions_ended(
            conn,
            db.live,
            lambda: conn.execute(
                f"CREATE DATABASE {_q(target)} TEMPLATE {_q(db.live)} OWNER {_q(owner)} "
                "STRATEGY FILE_COPY"
            ),
        )
        activity.logger.info(
            "copied database %s to %s in %.2f s", db.live, target, time.monotonic() - started
        )
        await label(conn, target, name, declared)
        size = await _size(conn, target)
    return DatabasePart(
        database=declared,
        live=db.live,
        copy_name=target,
        owner=str(owner),
        migrations=migrations,
        bytes=size,
        spare=spare_name(target),
    )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


async def restore(
    settings: Settings, part: DatabasePart, spare_run: Callable[[], Awaitable[None]] | None = None
) -> str:
    """Make the live database equal to the copy: its spare (or, without one, a new copy)
    renamed in place of the live database in one transaction."""
    db = find(settings, part.database)
    building, replaced = db.live + RESTORING, db.live + REPLACED
    spare = spare_name(part.copy_name)
    async with superuser(settings) as conn:
        if not await _exists(conn, part.copy_name):
            raise refuse(
                f"snapshot copy {part.copy_name} of database {part.database} is missing on the "
                "server: the snapshot cannot be restored (delete it)"
            )
        for leftover in (building, replaced):
            if await _exists(conn, leftover):
                await _while_busy(f"DROP DATABASE {_q(leftover)} WITH (FORCE)", conn)
        started = time.monotonic()
        if not await _exists(conn, spare) and spare_run is not None:
            await spare_run()  # being made: waiting costs less than a second copy
        if await _exists(conn, spare):
            source, how = spare, "its spare renamed in"
        else:
            # The copy refuses connections (see save): a template needs none, so that is fine.
            # The new database takes connections (the default): the refusal is not copied.
            await _copy(conn, part.copy_name, building, part.owner)
            source, how = building, "copied (no spare was ready)"
        live_exists = await _exists(conn, db.live)
        await _end_sessions(conn, source)  # a spare whose refusal a killed maker did not set

        async def swap() -> None:
            async with conn.transaction():
                if live_exists:
                    await conn.execute(f"ALTER DATABASE {_q(db.live)} RENAME TO {_q(replaced)}")
                await conn.execute(f"ALTER DATABASE {_q(source)} RENAME TO {_q(db.live)}")
                # In the same transaction: the spare's refusal ends as it becomes live.
                await conn.execute(f"ALTER DATABASE {_q(db.live)} ALLOW_CONNECTIONS true")

        await _with_sessions_ended(conn, db.live, swap)
        activity.logger.info("database %s: %s in %.2f s", db.live, how, time.monotonic() - started)
        # The old database is dropped after the restore (remake_spare): a drop checkpoints,
        # writing out every changed page while the restore's other parts need the disk.
        size = await _size(conn, db.live)
    migrations = await _migrations_of(db)
    if migrations != part.migrations:
        msg = (
            f"database {db.live} after the restore records migrations {migrations}, the "
            f"snapshot {part.migrations}"
        )
        raise refuse(msg)
    return f"database {db.live}: {how}, {size} bytes, {len(migrations)} migrations as saved"


async def remake_spare(settings: Settings, part: DatabasePart) -> str:
    """After a restore: the database it replaced dropped, and the copy's spare made again
    (nothing when it is there)."""
    async with superuser(settings) as conn:
        with contextlib.suppress(ApplicationError):  # no longer declared: nothing replaced
            replaced = find(settings, part.database).live + REPLACED
            if await _exists(conn, replaced):
                await _while_busy(f"DROP DATABASE {_q(replaced)} WITH (FORCE)", conn)
        if not await _exists(conn, part.copy_name):
            return f"database {part.database}: no copy {part.copy_name} (snapshot deleted)"
        started = time.monotonic()
        made = await make_spare(conn, part.copy_name, part.owner)
    if not made:
        return f"database {part.database}: spare ready"
    return f"database {part.database}: spare made in {time.monotonic() - started:.2f} s"


def comment(name: str, declared: str) -> str:
    return f"conceptor snapshot {name}: database {declared}"


async def label(conn: asyncpg.Connection, copy: str, name: str, declared: str) -> None:
    """Say what the copy is (its name is a digest), and close it: a template must have no
    sessions when a restore copies it, so no one works in it by mistake."""
    await conn.execute(f"COMMENT ON DATABASE {_q(copy)} IS " + _literal(comment(name, declared)))
    await conn.execute(f"ALTER DATABASE {_q(copy)} ALLOW_CONNECTIONS false")


async def drop_all(settings: Settings, name: str, declared: list[str]) -> list[str]:
    """Drop every copy of snapshot `name` (found by their comment: a partial save's too) and
    their spares, and the spares of the copies of databases `declared` (by their names)."""
    async with superuser(settings) as conn:
        rows = await conn.fetch(
            "SELECT datname FROM pg_database WHERE shobj_description(oid, 'pg_database') LIKE $1",
            _like_escape(f"conceptor snapshot {name}: database ") + "%",
        )
        copies = [str(row["datname"]) for row in rows]
        spares = {spare_name(c) for c in [*copies, *(copy_name(name, d) for d in declared)]}
        dropped = []
        for target in [*sorted(spares), *copies]:
            if await _exists(conn, target):
                await _while_busy(f"DROP DATABASE {_q(target)} WITH (FORCE)", conn)
                dropped.append(target)
    return dropped


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
