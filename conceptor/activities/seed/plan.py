"""The seed diff, computed apart from any I/O: files checked against the live schema, rows
matched with live rows by natural key, per mode what to create, update and delete."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from conceptor.activities.reconcile import canonical
from conceptor.activities.seed.files import SeedRefused, SeedRow
from conceptor.activities.seed.values import Column, from_live, parse, supported
from conceptor.contracts import Change

# A row's natural key: its key columns' values (a reference's value is the referenced key).
Key = tuple[Any, ...]


@dataclass(frozen=True)
class SeedTable:
    """One table's seed declaration and the rows of its file."""

    table: str
    file: str  # as messages name it
    key: tuple[str, ...]
    mode: str  # insert-missing | enforce | managed
    references: dict[str, tuple[str, tuple[str, ...]]]  # column -> (table, its natural key)
    rows: list[SeedRow]
    from_text: bool = False  # CSV: every value is a string

    @property
    def kind(self) -> str:
        """The kind of its rows' changes: insert-missing rows are not watched for drift."""
        return "seed-row" if self.mode == "insert-missing" else "row"


@dataclass
class LiveTable:
    """A table as the server has it: columns, primary key, foreign keys, rows (with ctid)."""

    columns: dict[str, Column]
    primary_key: tuple[str, ...] = ()
    foreign: dict[str, tuple[str, str]] = field(default_factory=dict)  # col -> (table, col)
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class DesiredRow:
    """A file's row parsed: values by column (a reference holds the referenced key)."""

    number: int
    key: Key
    values: dict[str, Any]


@dataclass
class TablePlan:
    """What seeding one table does; `index` maps natural keys to live rows (for references)."""

    seed: SeedTable
    targets: dict[str, str]  # reference column -> the referenced table's column it holds
    create: list[DesiredRow] = field(default_factory=list)
    update: list[tuple[DesiredRow, str, list[str]]] = field(default_factory=list)  # ctid
    delete: list[tuple[Key, str]] = field(default_factory=list)  # key, ctid
    forget: list[str] = field(default_factory=list)  # recorded keys whose row is gone
    unchanged: int = 0
    changes: list[Change] = field(default_factory=list)
    index: dict[Key, dict[str, Any]] = field(default_factory=dict)
    desired_keys: set[Key] = field(default_factory=set)
    live_state: list[Any] = field(default_factory=list)  # natural rows, for the digest
    _by_value: dict[str, dict[Any, Key]] = field(default_factory=dict)
    _by_text: dict[tuple[str, ...], Key] | None = None

    def by_text(self) -> dict[tuple[str, ...], Key]:
        """Every seeded or live natural key, by its values as text (references name them)."""
        if self._by_text is None:
            self._by_text = {}
            for key in [*self.index, *self.desired_keys]:
                self._by_text.setdefault(tuple(_shown(v) for v in key), key)
        return self._by_text

    def key_of(self, column: str, value: Any) -> Key | None:
        """The natural key of the live row whose `column` holds `value` (a referenced id)."""
        if column not in self._by_value:
            found: dict[Any, Key] = {}
            for key, raw in self.index.items():
                found.setdefault(raw.get(column), key)
            self._by_value[column] = found
        return self._by_value[column].get(value)


def record_key(key: Key) -> str:
    """How a key is kept in the record of inserted rows."""
    return canonical(list(key))


def show_key(key: Key) -> str:
    return ", ".join("/".join(map(str, v)) if isinstance(v, tuple) else str(v) for v in key)


def order(seeds: list[SeedTable]) -> list[SeedTable]:
    """Referenced tables before those that reference them; a cycle is refused."""
    by_table = {s.table: s for s in seeds}
    done: list[SeedTable] = []
    state: dict[str, int] = {}

    def visit(seed: SeedTable, path: list[str]) -> None:
        if state.get(seed.table) == 2:
            return
        if state.get(seed.table) == 1:
            cycle = " -> ".join([*path[path.index(seed.table) :], seed.table])
            raise SeedRefused(f"seed tables reference each other in a cycle: {cycle}")
        state[seed.table] = 1
        for ref_table, _ in seed.references.values():
            if ref_table in by_table:
                visit(by_table[ref_table], [*path, seed.table])
        state[seed.table] = 2
        done.append(seed)

    for seed in seeds:
        visit(seed, [])
    return done


def _targets(seed: SeedTable, live: LiveTable, schema: dict[str, LiveTable]) -> dict[str, str]:
    """Which column of the referenced table each reference column holds: its foreign key's,
    else the referenced table's one-column primary key."""
    out = {}
    for column, (ref_table, _) in seed.references.items():
        fk = live.foreign.get(column)
        parent = schema.get(ref_table)
        if fk is not None and fk[0] == ref_table:
            out[column] = fk[1]
        elif parent is not None and len(parent.primary_key) == 1:
            out[column] = parent.primary_key[0]
        else:
            raise SeedRefused(
                f"{seed.file}: references.{column}: {seed.table}.{column} has no foreign key "
                f"to {ref_table}, which has no one-column primary key to hold"
            )
    return out


def desired_rows(
    seed: SeedTable, live: LiveTable | None, parents: dict[str, TablePlan]
) -> list[DesiredRow]:
    """The file's rows parsed as the live columns' types; refused (naming file, row and
    column) for a missing table or column, a value that does not parse, a repeated key."""
    if live is None:
        raise SeedRefused(f"{seed.file}: table {seed.table!r} does not exist")
    for column in [*seed.key, *seed.references]:
        if column not in live.columns:
            raise SeedRefused(
                f"{seed.file}: column {column!r} (of the key or references) does not exist "
                f"in table {seed.table}"
            )
    rows: list[DesiredRow] = []
    seen: dict[Key, int] = {}
    for row in seed.rows:
        where = f"{seed.file}: row {row.number}"
        values: dict[str, Any] = {}
        for column, value in row.values.items():
            col = live.columns.get(column)
            if col is None:
                raise SeedRefused(
                    f"{where}: column {column!r} does not exist in table {seed.table} "
                    f"(it has {', '.join(live.columns)})"
                )
            if column in seed.references:
                values[column] = _reference(seed, row, column, value, parents)
                continue
            if not supported(col):
                raise SeedRefused(
                    f"{where}: column {column!r}: type {col.sql_type} is not supported in "
                    "seed files"
                )
            try:
                values[column] = parse(value, col, from_text=seed.from_text)
            except ValueError as exc:
                raise SeedRefused(
                    f"{where}: column {column!r}: {value!r} does not parse as {col.sql_type}: {exc}"
                ) from None
        for column in seed.key:
            if values.get(column) is None:
                raise SeedRefused(f"{where}: column {column!r}: the key needs a value")
            if isinstance(values[column], dict | list):
                raise SeedRefused(f"{where}: column {column!r}: a key value must be a scalar")
        key = tuple(values[c] for c in seed.key)
        if key in seen:
            raise SeedRefused(
                f"{where}: column(s) {', '.join(seed.key)}: key ({show_key(key)}) is not "
                f"unique in the file (row {seen[key]} has it too)"
            )
        seen[key] = row.number
        rows.append(DesiredRow(row.number, key, values))
    return rows


def _reference(
    seed: SeedTable, row: SeedRow, column: str, value: Any, parents: dict[str, TablePlan]
) -> tuple[Any, ...] | None:
    """A reference's value as the referenced row's natural key; refused if no such row is
    seeded or live."""
    if value is None:
        return None
    ref_table, ref_key = seed.references[column]
    parent = parents[ref_table]
    raw = value if isinstance(value, list) else [value]
    if seed.from_text and len(ref_key) > 1 and isinstance(value, str):
        raw = value.split("/")  # CSV: a several-column key as a/b
    where = f"{seed.file}: row {row.number}: column {column!r}"
    if len(raw) != len(ref_key):
        raise SeedRefused(f"{where}: give {ref_table}'s key ({', '.join(ref_key)})")
    # The referenced key's values compare as text: the file may give 7 or "7" alike.
    found = parent.by_text().get(tuple(_shown(v) for v in raw))
    if found is not None:
        return found
    raise SeedRefused(
        f"{where}: no row of {ref_table} has {', '.join(ref_key)} = {show_key(tuple(raw))}"
    )


def _shown(value: Any) -> str:
    return "/".join(map(str, value)) if isinstance(value, tuple) else str(value)


def plan_table(
    seed: SeedTable,
    live: LiveTable | None,
    schema: dict[str, LiveTable],
    parents: dict[str, TablePlan],
    recorded: set[str],
) -> TablePlan:
    """Check the file against the live table, then what to do per row, by mode."""
    desired = desired_rows(seed, live, parents)
    assert live is not None  # desired_rows refused a missing table
    plan = TablePlan(seed, _targets(seed, live, schema))
    plan.desired_keys = {d.key for d in desired}
    given = {*seed.key, *(c for d in desired for c in d.values)}
    columns = [c for c in live.columns if c in given]
    naturals: dict[Key, dict[str, Any]] = {}  # the first live row of each key, as a file has it
    for raw in live.rows:
        natural = _natural(seed, live, columns, raw, plan.targets, parents)
        key = tuple(natural.get(c) for c in seed.key)
        if key not in plan.index:
            plan.index[key] = raw
            naturals[key] = natural
        plan.live_state.append(canonical(natural))
    plan.live_state.sort()
    for row in desired:
        found = plan.index.get(row.key)
        name = f"{seed.table}({show_key(row.key)})"
        source = f"{seed.file} row {row.number}"
        if found is None:
            plan.create.append(row)
            plan.changes.append(Change(kind=seed.kind, name=name, action="create", source=source))
            continue
        have = naturals[row.key]
        fields = [c for c, v in row.values.items() if have.get(c) != v]
        if fields and seed.mode != "insert-missing":
            plan.update.append((row, found["ctid"], fields))
            action = "update"
        else:
            plan.unchanged += 1
            action = "unchanged"
        plan.changes.append(
            Change(kind=seed.kind, name=name, action=action, fields=fields, source=source)
        )
    if seed.mode == "managed":
        for key, raw in plan.index.items():
            if key not in plan.desired_keys and record_key(key) in recorded:
                plan.delete.append((key, raw["ctid"]))
                name = f"{seed.table}({show_key(key)})"
                plan.changes.append(Change(kind="row", name=name, action="delete"))
    live_keys = {record_key(k) for k in plan.index}
    plan.forget = sorted(r for r in recorded if r not in live_keys)
    return plan


def _natural(
    seed: SeedTable,
    live: LiveTable,
    columns: list[str],
    raw: dict[str, Any],
    targets: dict[str, str],
    parents: dict[str, TablePlan],
) -> dict[str, Any]:
    """A live row's `columns` as a file would give them: a reference as the referenced
    natural key (an id no seeded row has stays apart: it equals no key)."""
    out: dict[str, Any] = {}
    for column in columns:
        value = raw.get(column)
        if column in seed.references and value is not None:
            parent = parents[seed.references[column][0]]
            key = parent.key_of(targets[column], value)
            out[column] = key if key is not None else ("unknown id", value)
        else:
            out[column] = from_live(value, live.columns[column])
    return out


def counts_line(plans: list[TablePlan]) -> str:
    """Rows per table: created, updated, deleted, unchanged."""
    return "; ".join(
        f"{p.seed.table}: {len(p.create)} created, {len(p.update)} updated, "
        f"{len(p.delete)} deleted, {p.unchanged} unchanged"
        for p in plans
    )


def unchecked_table(seed: SeedTable) -> TablePlan:
    """A plan before the table exists (a database not migrated yet): every row created, the
    file checked against the schema once the migrations made it."""
    plan = TablePlan(seed, {})
    for row in seed.rows:
        key = tuple(row.values.get(c) for c in seed.key)
        plan.create.append(DesiredRow(row.number, key, dict(row.values)))
        name = f"{seed.table}({show_key(key)})"
        source = f"{seed.file} row {row.number}"
        plan.changes.append(Change(kind=seed.kind, name=name, action="create", source=source))
    return plan
