"""PostgreSQL activities: wait for the server, apply migrations under a lock, reset on request."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
from pydantic import SecretStr
from temporalio import activity
from temporalio.exceptions import ApplicationError

from conceptor.activities.declared import load_declared
from conceptor.activities.diffs import step_result
from conceptor.activities.migration_plan import (
    MIGRATION_FAILED,
    MigrationFile,
    line_of,
    migrations_diff,
    read_migrations,
)
from conceptor.activities.reconcile import check_plan, refuse, verify
from conceptor.activities.schema_catalog import read_schema
from conceptor.activities.schema_shadow import ExpectedSchema, expected_schema, superuser_dsn
from conceptor.activities.waiting import address_of, heartbeating, wait_for
from conceptor.contracts import (
    RESET_POSTGRES,
    Change,
    Diff,
    ReconcileInput,
    ResetPostgresInput,
    StepResult,
    WaitInput,
)
from conceptor.platform import environment
from conceptor.platform.settings import Settings

# Any constant shared by every process that migrates this database; "conceptor" in ASCII.
MIGRATION_LOCK_KEY = 0x636F6E636570746F
MIGRATIONS_TABLE = "schema_migrations"
RESTORE_FAILED = "RestoreFailed"
DATABASE_UNDECLARED = "DatabaseUndeclared"
_CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
    filename    text PRIMARY KEY,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    duration_ms integer NOT NULL
)"""


class PostgresActivities:
    """Activities bound to one settings object (the DSN and its password never leave it)."""

    def __init__(
        self, settings: Settings, folders: list[Path] | None = None, owner: str | None = None
    ) -> None:
        self.settings = settings
        # A declared database's migrations and owner role (None: settings' database).
        self.folders = folders
        self.owner = owner

    @property
    def _address(self) -> str:
        """host:port of the DSN (which may be overridden), without user or password."""
        return address_of(self.settings.postgres_dsn, 5432)

    async def connect(self) -> asyncpg.Connection:
        """A connection to this database as the application role (acting as the owner)."""
        return await self._connect()

    async def _connect(self) -> asyncpg.Connection:
        conn = await asyncpg.connect(self.settings.postgres_dsn, timeout=5)
        if self.owner and self.owner != urlsplit(self.settings.postgres_dsn).username:
            # What the migrations create belongs to the declared owner.
            await conn.execute(f'SET ROLE "{self.owner}"')
        return conn

    async def pending_migrations(self, conn: asyncpg.Connection) -> list[str]:
        """The migration files not recorded as applied in this database yet."""
        applied = await _applied(conn)
        return [m.name for m in self._migrations() if m.name not in applied]

    def migration_names(self) -> list[str]:
        """The migrations on disk for this database, in the order they apply."""
        return [m.name for m in self._migrations()]

    def _migrations(self) -> list[MigrationFile]:
        """The migrations of every folder, as one set in name order."""
        folders = self.folders if self.folders is not None else self._settings_folders()
        if len(folders) == 1:
            return read_migrations(folders[0])
        files = [m for folder in folders for m in read_migrations(folder)]
        names = [m.name for m in files]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            where = ", ".join(str(f) for f in folders)
            msg = f"migration(s) {', '.join(twice)} in more than one of {where}"
            raise ApplicationError(msg, type=MIGRATION_FAILED, non_retryable=True)
        return sorted(files, key=lambda m: m.name)

    def _settings_folders(self) -> list[Path]:
        """CENTRAL_MIGRATIONS_DIR when set, else the environment file's first database's."""
        if self.settings.migrations_dir is not None:
            return [self.settings.migrations_dir]
        file = environment.default_file()
        try:
            env = environment.load(file)
        except environment.EnvironmentFileError as exc:
            raise ApplicationError(str(exc), type=MIGRATION_FAILED, non_retryable=True) from None
        if not env.databases:
            msg = f"{file} declares no database and CENTRAL_MIGRATIONS_DIR is not set"
            raise ApplicationError(msg, type=MIGRATION_FAILED, non_retryable=True)
        base = file.resolve().parent
        return [(base / f).resolve() for f in env.databases[0].migration_folders]

    def declared(self, name: str) -> PostgresActivities:
        """The same activities on database `name` of the environment file."""
        env, file = load_declared(DATABASE_UNDECLARED)
        db = next((d for d in env.databases if d.name == name), None)
        if db is None:
            declared = ", ".join(d.name for d in env.databases) or "none"
            msg = f"{file} declares no database {name!r} (it declares {declared})"
            raise ApplicationError(msg, type=DATABASE_UNDECLARED, non_retryable=True)
        dsn = urlsplit(self.settings.postgres_dsn)._replace(path=f"/{name}").geturl()
        settings = self.settings.model_copy(update={"postgres_dsn_override": SecretStr(dsn)})
        base = file.resolve().parent
        folders = [(base / f).resolve() for f in db.migration_folders]
        return PostgresActivities(settings, folders, db.owner)

    async def _database_exists(self) -> bool:
        try:
            conn = await asyncpg.connect(self.settings.postgres_dsn, timeout=5)
        except asyncpg.InvalidCatalogNameError:
            return False
        await conn.close()
        return True

    async def _create_database(self) -> None:
        """Create the database (and its owner role, if missing) as the superuser; another run
        creating it at the same time is fine."""
        parts = urlsplit(self.settings.postgres_dsn)
        name = parts.path.lstrip("/")
        user = parts.username or self.settings.postgres_user
        owner = self.owner or user
        admin = await asyncpg.connect(superuser_dsn(self.settings), timeout=5)
        try:
            if owner != user:
                role = await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", owner)
                if role is None:
                    with _exists_ok():
                        await admin.execute(f'CREATE ROLE "{owner}" NOLOGIN')
                # The application role migrates as the owner (SET ROLE).
                await admin.execute(f'GRANT "{owner}" TO "{user}"')
            with _exists_ok():
                await admin.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
        finally:
            await admin.close()
        activity.logger.info("created database %s owned by %s", name, owner)

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
    async def migrate_postgres(self, data: ReconcileInput | None = None) -> StepResult:
        """Apply every pending migration in order, each in its own transaction, under a lock;
        rebuild what they created that is gone; report what none of them created.
        `plan`: compute, write nothing. `target`: a database of the environment file, created
        first if missing (a plan of a missing one: the database and every migration)."""
        if data is not None and data.target is not None:
            return await self.declared(data.target)._migrate(data)
        return await self._migrate(data)

    async def _migrate(self, data: ReconcileInput | None) -> StepResult:
        files = self._migrations()
        attempt = activity.info().attempt
        async with heartbeating():
            if self.folders is not None and not await self._database_exists():
                if data is not None and data.plan:
                    return await self._plan_missing(files, attempt)
                await self._create_database()
            conn = await self._connect()
            try:
                if data is not None and data.plan:
                    diff, _ = await self._diff(conn, files)
                    return await step_result(self.settings, diff, planned=True, attempts=attempt)
                return await self._migrate_locked(conn, files, data, attempt)
            finally:
                await conn.close()

    async def _plan_missing(self, files: list[MigrationFile], attempt: int) -> StepResult:
        """A declared database not created yet: it, and every migration, would be created."""
        name = urlsplit(self.settings.postgres_dsn).path.lstrip("/")
        diff = migrations_diff(_target(self.settings), files, {}, {}, None)
        diff = diff.model_copy(
            update={
                "changes": [
                    Change(kind="database", name=name, action="create"),
                    *(c for c in diff.changes if c.kind == "migration"),
                ]
            }
        )
        return await step_result(self.settings, diff, planned=True, attempts=attempt)

    async def _diff(
        self, conn: asyncpg.Connection, files: list[MigrationFile]
    ) -> tuple[Diff, ExpectedSchema]:
        """Read the live state (recorded migrations, the schema) and diff it with the files and
        with the schema the recorded migrations create."""
        applied = await _applied(conn)
        live = await read_schema(conn)
        replayed = [m for m in files if m.name in applied]
        expected = await expected_schema(self.settings, replayed)
        diff = migrations_diff(
            _target(self.settings),
            files,
            applied,
            live,
            expected.schema,
            expected.sources,
            expected.restore.refused,
        )
        return diff, expected

    async def _migrate_locked(
        self,
        conn: asyncpg.Connection,
        files: list[MigrationFile],
        data: ReconcileInput | None,
        attempt: int,
    ) -> StepResult:
        # A session lock: concurrent runs (another workflow id, another worker) queue up here,
        # then find the files already recorded and apply nothing twice.
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        try:
            before, expected = await self._diff(conn, files)
            check_plan(before, data)
            _refuse_unrebuildable(before)
            # What the recorded migrations made and is gone comes back first: a pending
            # migration may alter it.
            rebuild = [c for c in before.pending if c.kind != "migration"]
            if rebuild:
                await _rebuild(conn, before.target, expected, rebuild)
            pending = {c.name for c in before.pending if c.kind == "migration"}
            if pending:
                await conn.execute(_CREATE_TABLE)
            for migration in files:
                if migration.name in pending:
                    await _apply(conn, migration)
            # Judged again after applying: the schema every recorded migration creates,
            # replayed into a throwaway database, against the live one.
            after, _ = await self._diff(conn, files)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
        verify(after)
        applied = Diff(
            target=before.target,
            changes=[*(c for c in before.changes if c.action != "drift"), *after.drift],
            desired_digest=before.desired_digest,
            live_digest=before.live_digest,
        )
        done = len(pending)
        detail = f"{done} applied, {len(files) - done} already applied"
        gone = [c for c in rebuild if c.action == "create"]
        if gone:
            tables = sum(c.kind == "table" for c in gone)
            detail += f"; {len(gone)} missing rebuilt" + (
                f" ({tables} table(s) empty: their rows are gone)" if tables else ""
            )
        if len(rebuild) > len(gone):
            detail += f"; {len(rebuild) - len(gone)} changed made again"
        if after.drift:
            detail += f"; {len(after.drift)} not created by any migration (left alone)"
        return await step_result(self.settings, applied, attempts=attempt, detail=detail)

    @activity.defn(name=RESET_POSTGRES)
    async def reset_postgres(self, data: ResetPostgresInput | None = None) -> int:
        """Drop and re-create the public schema (every table, the migrations record too) of
        the first database, or of `data.database` of the environment file; an undeclared name
        is refused before anything is touched."""
        name = data.database if data is not None else None
        if name is not None and name != self._first_database():
            return await self.declared(name)._reset()
        return await self._reset()

    def _first_database(self) -> str:
        """The database the plain step manages: settings' (the file's first by default)."""
        return urlsplit(self.settings.postgres_dsn).path.lstrip("/")

    async def _reset(self) -> int:
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


def _refuse_unrebuildable(diff: Diff) -> None:
    """Before any write: an object the migrations created is gone and cannot be rebuilt."""
    for change in diff.drift:
        if change.fields[:1] == ["missing"] and len(change.fields) > 1:
            raise refuse(
                f"{diff.target}: {change.label}",
                f"created by a recorded migration, it is gone and {change.fields[1]}",
                "re-create it by hand, or reset the database (conceptor dev reset postgres, "
                "or the ResetPostgresWorkflow) and provision again",
            )


async def _rebuild(
    conn: asyncpg.Connection, target: str, expected: ExpectedSchema, changes: list[Change]
) -> None:
    """Re-create what the recorded migrations made and is gone, and remake what they made
    and differs, from the statements read off the replayed schema, in one transaction: all
    of it comes back, or none."""
    labels = [c.label for c in changes]
    create = [c.label for c in changes if c.action == "create"]
    replace = [c.label for c in changes if c.action == "update"]
    statement = ""
    try:
        async with conn.transaction():
            # A function's body may name a table made later in the same rebuild.
            await conn.execute("SET LOCAL check_function_bodies = off")
            for statement in expected.restore.plan(create, replace):
                await conn.execute(statement)
    except asyncpg.PostgresError as exc:
        msg = (
            f"{target}: rebuilding {', '.join(labels)} failed at "
            f"`{' '.join(statement.split())[:300]}`: {exc.sqlstate} {exc}; "
            "it was rolled back, nothing of it is rebuilt"
        )
        raise ApplicationError(msg, type=RESTORE_FAILED, non_retryable=True) from None
    activity.logger.info("%s: rebuilt %s", target, ", ".join(labels))


async def _applied(conn: asyncpg.Connection) -> dict[str, str]:
    """filename -> checksum of recorded migrations; none before the record table exists."""
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", MIGRATIONS_TABLE)
    if not exists:
        return {}
    rows = await conn.fetch(f"SELECT filename, checksum FROM {MIGRATIONS_TABLE}")
    return {row["filename"]: row["checksum"] for row in rows}


class _exists_ok:
    """Ignore "already exists": another run created the same object at the same time."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is not None and issubclass(
            kind, asyncpg.DuplicateDatabaseError | asyncpg.DuplicateObjectError
        )


def _target(settings: Settings) -> str:
    return f"database {urlsplit(settings.postgres_dsn).path.lstrip('/')}"


async def applied_migrations(conn: asyncpg.Connection) -> list[str]:
    """The migrations recorded as applied in the connected database, in name order."""
    return sorted(await _applied(conn))
