"""Pure migration logic: read the SQL files, checksum them, diff them with the live database."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypedDict

from temporalio.exceptions import ApplicationError

from conceptor.activities.reconcile import digest
from conceptor.contracts import Change, Diff

MIGRATION_EDITED = "MigrationEdited"
MIGRATION_FAILED = "MigrationFailed"
MIGRATIONS_MISSING = "MigrationsMissing"
_NAME = re.compile(r"^\d{4}_[A-Za-z0-9_]+\.sql$")


# What a compared object is: a table holds parts (columns...); the others are one definition.
Kind = Literal["table", "view", "function", "type", "sequence"]


class Table(TypedDict):
    """One table, view, function, type or sequence of a database, as compared: the names of
    what it holds, sorted, and their definitions."""

    kind: Kind
    columns: list[str]
    constraints: list[str]
    indexes: list[str]
    triggers: list[str]
    # Each part's definition as PostgreSQL prints it ("column:<name>": its type, collation,
    # default, identity, NOT NULL; "index:<name>": CREATE INDEX ...; "view": the query;
    # "function": CREATE OR REPLACE FUNCTION ...; "type": CREATE TYPE/DOMAIN ...;
    # "sequence": CREATE SEQUENCE ...).
    definitions: dict[str, str]


# A database's tables, views, types and sequences by qualified name ({"<schema>.<table>":
# Table}), and its functions by signature ("<schema>.<name>(<argument types>)").
Schema = dict[str, Table]
PartKey = Literal["columns", "constraints", "indexes", "triggers"]
# What a table holds, and the change kind of each; an index is named within its schema.
PARTS: tuple[tuple[PartKey, str], ...] = (
    ("columns", "column"),
    ("constraints", "constraint"),
    ("indexes", "index"),
    ("triggers", "trigger"),
)


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


def part_name(table: str, kind: str, name: str) -> str:
    """A part's identity: `<schema>.<index>` for an index (unique per schema), else
    `<schema>.<table>.<name>` (unique per table)."""
    if kind == "index":
        return f"{table.partition('.')[0]}.{name}"
    return f"{table}.{name}"


def labels(schema: Schema) -> set[str]:
    """Every object of a schema as a change label (`table:public.t`, `column:public.t.c`...)."""
    out: set[str] = set()
    for name, table in schema.items():
        out.add(f"{table['kind']}:{name}")
        for key, kind in PARTS:
            out.update(f"{kind}:{part_name(name, kind, p)}" for p in table[key])
    return out


def schema_drift(
    live: Schema,
    expected: Schema,
    sources: dict[str, str] | None = None,
    unrestorable: dict[str, str] | None = None,
) -> list[Change]:
    """How the live schema departs from what the applied migrations create.

    An object they created that is gone (a table, view, function, type, sequence, column,
    constraint, index or trigger) is a `create` with fields `["missing"]`: applying rebuilds it
    from the schema the migrations create (a table comes back empty: its rows are not the
    migrations' to restore). One that cannot be rebuilt (`unrestorable`: label -> why) is
    `drift`, with why.
    An index, constraint, trigger, view or function whose definition differs is an `update`
    (fields `["definition"]`: applying makes it again); a column whose definition differs (type,
    collation, default, identity, NOT NULL), a type (enum values, a domain's checks) or a
    sequence is `drift`, never rewritten: that is its data's.
    An object none of them created is `drift`, never touched: it may be a developer's
    experiment. `sources` names the migration that created each object.

    `expected` is the schema of the migrations already applied, so a table a pending
    migration is about to create is not reported missing.
    """
    sources = sources or {}
    unrestorable = unrestorable or {}

    def missing(kind: str, name: str) -> Change:
        label = f"{kind}:{name}"
        why = unrestorable.get(label)
        if why:
            fields = ["missing", f"cannot be rebuilt: {why}"]
            return Change(kind=kind, name=name, action="drift", fields=fields)
        source = sources.get(label, "")
        return Change(kind=kind, name=name, action="create", fields=["missing"], source=source)

    def changed(kind: str, name: str, want: Table, have: Table, key: str) -> Change:
        # A column's definition is its data's (a type, NOT NULL), and so is a type's (an enum's
        # values, a domain's checks) and a sequence's (its range): never rewritten. An index,
        # constraint, trigger, view or function holds no data of its own: made again.
        if kind in ("column", "type", "sequence"):
            fields = [
                "definition",
                f"migrations: {want['definitions'].get(key)}",
                f"live: {have['definitions'].get(key)}",
            ]
            return Change(kind=kind, name=name, action="drift", fields=fields)
        source = sources.get(f"{kind}:{name}", "")
        return Change(kind=kind, name=name, action="update", fields=["definition"], source=source)

    changes: list[Change] = []
    for name in sorted(set(live) | set(expected)):
        want, have = expected.get(name), live.get(name)
        if want is None:
            assert have is not None
            changes.append(Change(kind=have["kind"], name=name, action="drift"))
            continue
        if have is None:
            changes.append(missing(want["kind"], name))
            continue
        if want["kind"] != have["kind"]:
            fields = [f"a {have['kind']}, the migrations create a {want['kind']}"]
            changes.append(Change(kind=want["kind"], name=name, action="drift", fields=fields))
            continue
        whole = want["kind"]  # a view's query, a function's body: one definition each
        if whole != "table" and want["definitions"].get(whole) != have["definitions"].get(whole):
            changes.append(changed(whole, name, want, have, whole))
        for key, kind in PARTS:
            if want["kind"] == "view" and key == "columns":
                continue  # a view's columns are its query's: compared with it
            for part in sorted(set(have[key]) - set(want[key])):
                changes.append(Change(kind=kind, name=part_name(name, kind, part), action="drift"))
            for part in sorted(set(want[key]) - set(have[key])):
                changes.append(missing(kind, part_name(name, kind, part)))
            for part in sorted(set(want[key]) & set(have[key])):
                if want["definitions"].get(f"{kind}:{part}") != have["definitions"].get(
                    f"{kind}:{part}"
                ):
                    changes.append(
                        changed(kind, part_name(name, kind, part), want, have, f"{kind}:{part}")
                    )
    return changes


def migrations_diff(
    target: str,
    files: list[MigrationFile],
    applied: dict[str, str],
    live: Schema,
    expected: Schema | None,
    sources: dict[str, str] | None = None,
    unrestorable: dict[str, str] | None = None,
) -> Diff:
    """The database's diff: migrations to apply, and (when `expected`, the schema the applied
    migrations create, is known) the objects they created that are gone and those none of
    them created (see schema_drift)."""
    changes = migration_changes(files, applied)
    if expected is not None:
        changes.extend(schema_drift(live, expected, sources, unrestorable))
    return Diff(
        target=target,
        changes=changes,
        desired_digest=digest([(m.name, m.checksum) for m in files]),
        live_digest=digest({"applied": applied, "schema": live}),
    )
