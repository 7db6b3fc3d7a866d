"""Pure migration logic: read the SQL files, checksum them, diff them with the live database."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from temporalio.exceptions import ApplicationError

from conceptor.activities.reconcile import digest
from conceptor.contracts import Change, Diff

MIGRATION_EDITED = "MigrationEdited"
MIGRATION_FAILED = "MigrationFailed"
MIGRATIONS_MISSING = "MigrationsMissing"
_NAME = re.compile(r"^\d{4}_[A-Za-z0-9_]+\.sql$")

# A database's tables and their columns: {"<schema>.<table>": ["<column>", ...]}.
Schema = dict[str, list[str]]


@dataclass(frozen=True)
class MigrationFile:
    """One SQL file: its name (the order key), its text, and the checksum of its bytes."""

    name: str
    sql: str
    checksum: str


def checksum(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_migrations(directory: Path) -> list[MigrationFile]:
    """Every `NNNN_name.sql` in `directory`, in name order; other .sql names are refused."""
    if not directory.is_dir():
        msg = f"migrations directory {directory} does not exist"
        raise ApplicationError(msg, type=MIGRATIONS_MISSING, non_retryable=True)
    files: list[MigrationFile] = []
    for path in sorted(directory.glob("*.sql")):
        if not _NAME.match(path.name):
            msg = f"migration file {path.name} in {directory} is not named NNNN_description.sql"
            raise ApplicationError(msg, type=MIGRATIONS_MISSING, non_retryable=True)
        data = path.read_bytes()
        files.append(MigrationFile(path.name, data.decode("utf-8"), checksum(data)))
    return files


def pending_migrations(files: list[MigrationFile], applied: dict[str, str]) -> list[MigrationFile]:
    """Files not yet applied; an applied file whose checksum changed is refused, by name."""
    for migration in files:
        recorded = applied.get(migration.name)
        if recorded is not None and recorded != migration.checksum:
            msg = (
                f"migration {migration.name} was edited after it was applied "
                f"(recorded checksum {recorded[:12]}, file now {migration.checksum[:12]}): "
                "restore the file and put the change in a new migration"
            )
            raise ApplicationError(msg, type=MIGRATION_EDITED, non_retryable=True)
    return [m for m in files if m.name not in applied]


def line_of(sql: str, position: str | int | None) -> int | None:
    """The 1-based line of a server-reported character position in `sql`, if any."""
    try:
        offset = int(position) if position is not None else 0
    except ValueError:
        return None
    if offset <= 0:
        return None
    return sql.count("\n", 0, offset - 1) + 1


def migration_changes(files: list[MigrationFile], applied: dict[str, str]) -> list[Change]:
    """`create` per pending file, `unchanged` per applied one, `drift` per recorded file that is
    gone from the directory; an edited applied file is refused (see pending_migrations)."""
    pending = {m.name for m in pending_migrations(files, applied)}
    names = {m.name for m in files}
    return [
        *(
            Change(
                kind="migration",
                name=m.name,
                action="create" if m.name in pending else "unchanged",
                source=m.name,
            )
            for m in files
        ),
        *(
            Change(kind="migration", name=name, action="drift", fields=["file missing"])
            for name in sorted(set(applied) - names)
        ),
    ]


def schema_drift(live: Schema, expected: Schema) -> list[Change]:
    """How the live schema departs from what the applied migrations create: tables and
    columns none of them created, and tables and columns they created that are gone (fields
    `["missing"]`). Reported (`drift`), never touched: a dropped table's data is not the
    migrations' to restore, and an extra one may be a developer's experiment.

    `expected` is the schema of the migrations already applied, so a table a pending
    migration is about to create is not reported missing.
    """
    changes: list[Change] = []
    for table in sorted(set(live) | set(expected)):
        if table not in expected:
            changes.append(Change(kind="table", name=table, action="drift"))
            continue
        if table not in live:
            changes.append(Change(kind="table", name=table, action="drift", fields=["missing"]))
            continue
        extra = sorted(set(live[table]) - set(expected[table]))
        changes.extend(Change(kind="column", name=f"{table}.{c}", action="drift") for c in extra)
        gone = sorted(set(expected[table]) - set(live[table]))
        changes.extend(
            Change(kind="column", name=f"{table}.{c}", action="drift", fields=["missing"])
            for c in gone
        )
    return changes


def migrations_diff(
    target: str,
    files: list[MigrationFile],
    applied: dict[str, str],
    live: Schema,
    expected: Schema | None,
) -> Diff:
    """The database's diff: migrations to apply, and (when `expected`, the schema the applied
    migrations create, is known) the tables and columns none of them created."""
    changes = migration_changes(files, applied)
    if expected is not None:
        changes.extend(schema_drift(live, expected))
    return Diff(
        target=target,
        changes=changes,
        desired_digest=digest([(m.name, m.checksum) for m in files]),
        live_digest=digest({"applied": applied, "schema": live}),
    )
