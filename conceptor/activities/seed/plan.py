"""The seed diff's pure part: files checked against the live schema and parsed as its types
(what is staged for comparing), and, from what comparing the live rows found, per mode what
to create, update and delete."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, NamedTuple

from conceptor.activities.seed.files import Kept, SeedRefused, SeedRow, forget_files
from conceptor.activities.seed.values import (
    Column,
    converter,
    parse,
    plain_type,
    supported,
    to_parameter,
)
from conceptor.contracts import Change
from conceptor.platform.collector import collector_paused

# A row's natural key: its key columns' values (a reference's value is the referenced key).
Key = tuple[Any, ...]
# reconcile.canonical's output for a key (sorted keys, no whitespace), one encoder for all.
_KEY_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)
_json_string: Callable[[str], str] = json.encoder.encode_basestring_ascii
# Files parsed against a schema lately, by everything the parsing depends on.
_DESIRED: Kept[tuple[Any, ...], Desired] = Kept()
# Rows listed as changes, per table and action; the rest are counted (a first load of 100 000
# rows lists 1 000 of each table, and the counts are exact). Rows equal to their file are
# only counted.
LISTED = 1000


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
    sha256: str = ""  # of the file's bytes ("" when the rows were not read from a file)

    @property
    def kind(self) -> str:
        """The kind of its rows' changes: insert-missing rows are not watched for drift."""
        return "seed-row" if self.mode == "insert-missing" else "row"


@dataclass
class LiveTable:
    """A table as the server has it: columns, primary key, one-column foreign keys."""

    columns: dict[str, Column]
    primary_key: tuple[str, ...] = ()
    foreign: dict[str, tuple[str, str]] = field(default_factory=dict)  # col -> (table, col)


class DesiredRow(NamedTuple):
    """A file's row parsed: values by column (a reference holds the referenced key)."""

    number: int
    key: Key
    values: dict[str, Any]


@dataclass
class Desired:
    """A file's rows parsed as the live columns' types, and as staged for comparing: per row
    (index, given-columns mask, record key, then each given column's value, a reference as
    its referenced key's values)."""

    rows: list[DesiredRow]
    given: list[str]  # the columns the file gives (in the table's order)
    targets: dict[str, str]  # reference column -> the referenced table's column it holds
    staged: list[tuple[Any, ...]]
    keys: set[Key]
    # Rows whose reference names no row of the referenced file: (index, column, as given),
    # to be found among the referenced table's live rows.
    unresolved: list[tuple[int, str, tuple[Any, ...]]]
    signature: tuple[Any, ...] = ()
    sums: dict[str, tuple[int, int]] = field(default_factory=dict)  # seed/digest.py's


@dataclass
class TablePlan:
    """What seeding one table does."""

    seed: SeedTable
    create: list[DesiredRow] = field(default_factory=list)
    update: list[tuple[DesiredRow, str, list[str]]] = field(default_factory=list)  # ctid
    delete: list[tuple[Key, str]] = field(default_factory=list)  # key, ctid
    forget: list[str] = field(default_factory=list)  # recorded keys whose row is gone
    created_at: list[int] = field(default_factory=list)  # indexes of `create`'s rows
    updated_at: list[int] = field(default_factory=list)  # indexes of `update`'s rows
    unchanged: int = 0
    changes: list[Change] = field(default_factory=list)
    left_out: dict[str, int] = field(default_factory=dict)  # action -> changes not listed


def forget_parsed() -> None:
    """Drop the files parsed lately (a benchmark's first load is measured cold)."""
    _DESIRED.clear()
    forget_files()


def record_key(key: Key) -> str:
    """How a key is kept in the record of inserted rows: reconcile.canonical(list(key)),
    strings and integers (the common keys) written here, at a fifth of the encoder's cost."""
    return "[" + ",".join(map(_json, key)) + "]"


def _json(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return _json_string(value)
    if kind is int:
        return int.__repr__(value)
    if kind is tuple:
        return "[" + ",".join(map(_json, value)) + "]"
    return _KEY_JSON.encode(value)


def show_key(key: Key) -> str:
    return ", ".join(
        v if type(v) is str else "/".join(map(str, v)) if isinstance(v, tuple) else str(v)
        for v in key
    )


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
    seed: SeedTable,
    live: LiveTable | None,
    schema: dict[str, LiveTable],
    parents: dict[str, Desired],
) -> Desired:
    """The file's rows parsed as the live columns' types; refused (naming file, row and
    column) for a missing table or column, a value that does not parse, a repeated key.
    The same file against the same schema (and referenced files) is parsed once."""
    if live is None:
        raise SeedRefused(f"{seed.file}: table {seed.table!r} does not exist")
    for column in [*seed.key, *seed.references]:
        if column not in live.columns:
            raise SeedRefused(
                f"{seed.file}: column {column!r} (of the key or references) does not exist "
                f"in table {seed.table}"
            )
    refs = sorted(seed.references.items())
    signature = (
        seed.table,
        seed.file,
        seed.key,
        tuple(refs),
        seed.from_text,
        seed.sha256 or id(seed.rows),
        tuple(live.columns.values()),
        tuple(sorted(live.foreign.items())),
        tuple(
            (t, tuple(schema[t].columns.values()), schema[t].primary_key, parents[t].signature)
            for t in sorted({t for _, (t, _) in refs})
            if t in schema and t in parents
        ),
    )
    found = _DESIRED.get(signature) if seed.sha256 else None
    if found is not None:
        return found
    with collector_paused():
        made = _Parsing(seed, live, schema, parents).run()
    made.signature = signature
    if seed.sha256:
        _DESIRED.put(signature, made)
    return made


class _Slow(Exception):
    """Parsing a column at a time met something to refuse: parse row by row to name it."""


class _Parsing:
    """One file's rows parsed: per set of columns a row gives, its converters, checked once."""

    def __init__(
        self,
        seed: SeedTable,
        live: LiveTable,
        schema: dict[str, LiveTable],
        parents: dict[str, Desired],
    ) -> None:
        self.seed = seed
        self.live = live
        self.schema = schema
        self.parents = parents
        self.targets = _targets(seed, live, schema)
        self.unresolved: list[tuple[int, str, tuple[Any, ...]]] = []
        self.n = 0  # the index of the row being parsed
        # Per reference column, each value given: its key and whether the referenced file
        # gives it (a thousand assets of one owner resolve it once).
        self.resolved: dict[str, dict[tuple[type, Any], tuple[Key, bool]]] = {
            c: {} for c in seed.references
        }

    def run(self) -> Desired:
        seed, live = self.seed, self.live
        named = {c for row in seed.rows for c in row.values}
        given = [c for c in live.columns if c in named or c in seed.key]
        if seed.rows and all(len(row.values) == len(named) for row in seed.rows):
            try:
                return self._by_column(given)
            except _Slow:
                self.unresolved = []  # row by row below, which refuses naming the row
        # Per set of columns a row gives: its mask over `given`, and per column the type a
        # value already is when it needs no parsing (None: a reference), and its parser.
        specs: dict[tuple[str, ...], tuple[str, list[tuple[str, type | None, Any]]]] = {}
        widths = [
            (c, len(seed.references[c][1]) if c in seed.references else 0, live.columns[c].is_json)
            for c in given
        ]
        # A JSON or array column's value may be a structure, which no key may hold.
        structured = any(
            live.columns[c].is_json or live.columns[c].element is not None
            for c in seed.key
            if c not in seed.references
        )
        rows: list[DesiredRow] = []
        staged: list[tuple[Any, ...]] = []
        seen: dict[Key, int] = {}
        keyed: dict[Key, str] = {}
        for n, row in enumerate(seed.rows):
            raw = row.values
            names = tuple(raw)
            spec = specs.get(names)
            if spec is None:
                spec = specs[names] = self._check(row, given)
            mask, parsers = spec
            self.n = n
            values: dict[str, Any] = {}
            for column, fast, convert in parsers:
                value = raw[column]
                if fast is not None and (value is None or type(value) is fast):
                    values[column] = value
                elif convert is None:
                    values[column] = self._reference(row, column, value)
                else:
                    try:
                        values[column] = convert(value)
                    except ValueError as exc:
                        self._refuse_value(row, column, value, exc)
            key = tuple([values.get(c) for c in seed.key])
            if None in key or (structured and any(isinstance(v, dict | list) for v in key)):
                self._refuse_key(row, values)
            if key in seen:
                raise SeedRefused(
                    f"{seed.file}: row {row.number}: column(s) {', '.join(seed.key)}: key "
                    f"({show_key(key)}) is not unique in the file (row {seen[key]} has it too)"
                )
            seen[key] = row.number
            rows.append(DesiredRow(row.number, key, values))
            parts = []  # record_key(key), a reference's part written once per key
            for v in key:
                if type(v) is str:
                    parts.append(_json_string(v))
                elif type(v) is tuple:
                    part = keyed.get(v)
                    if part is None:
                        part = keyed[v] = _json(v)
                    parts.append(part)
                else:
                    parts.append(_json(v))
            out: list[Any] = [n, mask, "[" + ",".join(parts) + "]"]
            for column, width, is_json in widths:
                value = values.get(column)
                if width:
                    out.extend(value if value is not None else (None,) * width)
                elif is_json and value is not None:
                    out.append(to_parameter(value, live.columns[column]))
                else:
                    out.append(value)
            staged.append(tuple(out))
        return Desired(rows, given, self.targets, staged, set(seen), self.unresolved)

    def _by_column(self, given: list[str]) -> Desired:
        """Every row giving the same columns (a CSV file, most others): parsed a column at a
        time, in comprehensions, three times as fast as row by row; anything to refuse
        raises _Slow, and the row-by-row parsing finds and names it."""
        seed, live = self.seed, self.live
        mask, parsers = self._check(seed.rows[0], given)
        raws = [row.values for row in seed.rows]
        columns: dict[str, list[Any]] = {}
        for column, fast, convert in parsers:
            values = [raw[column] for raw in raws]
            if convert is None:
                values = self._references(column, values)
            elif fast is None or not all(v is None or type(v) is fast for v in values):
                try:
                    values = [None if v is None else convert(v) for v in values]
                except ValueError:
                    raise _Slow from None
            columns[column] = values
        if any(c not in columns for c in seed.key):
            raise _Slow  # a key column no row gives
        keys = list(zip(*(columns[c] for c in seed.key), strict=True))
        structured = (v is None or isinstance(v, dict | list) for c in seed.key for v in columns[c])
        if any(structured) or len(set(keys)) != len(keys):
            raise _Slow
        names = [c for c, _, _ in parsers]
        rows = [
            DesiredRow(row.number, key, dict(zip(names, values, strict=True)))
            for row, key, values in zip(
                seed.rows, keys, zip(*(columns[c] for c in names), strict=True), strict=True
            )
        ]
        parts = []  # record_key(key), by column
        for c in seed.key:
            done: dict[Any, str] = {}
            parts.append([done.get(v) or done.setdefault(v, _json(v)) for v in columns[c]])
        record = ["[" + ",".join(p) + "]" for p in zip(*parts, strict=True)]
        staged_columns: list[list[Any]] = [list(range(len(rows))), [mask] * len(rows), record]
        for c in given:
            values = columns[c]
            if c in seed.references:
                for j in range(len(seed.references[c][1])):
                    staged_columns.append([None if v is None else v[j] for v in values])
            elif live.columns[c].is_json:
                col = live.columns[c]
                staged_columns.append([to_parameter(v, col) for v in values])
            else:
                staged_columns.append(values)
        staged = list(zip(*staged_columns, strict=True))
        return Desired(rows, given, self.targets, staged, set(keys), self.unresolved)

    def _references(self, column: str, values: list[Any]) -> list[Any]:
        """A reference column's values as referenced keys, each distinct value resolved once;
        one that cannot be resolved raises _Slow."""
        out: list[Any] = []
        for n, value in enumerate(values):
            if value is None:
                out.append(None)
                continue
            if isinstance(value, list | dict):
                raise _Slow
            memo = self.resolved[column]
            found = memo.get((type(value), value))
            if found is None:
                try:
                    found = self._resolve(self.seed.rows[n], column, value)
                except SeedRefused:
                    raise _Slow from None
                memo[(type(value), value)] = found
            if not found[1]:
                self.unresolved.append((n, column, tuple(self._raw(column, value))))
            out.append(found[0])
        return out

    def _check(
        self, row: SeedRow, given: list[str]
    ) -> tuple[str, list[tuple[str, type | None, Any]]]:
        """The columns a row gives, checked against the table: a mask over `given`, and
        per column how its values parse."""
        seed, live = self.seed, self.live
        parsers: list[tuple[str, type | None, Any]] = []
        for column in row.values:
            col = live.columns.get(column)
            if col is None:
                raise SeedRefused(
                    f"{seed.file}: row {row.number}: column {column!r} does not exist in table "
                    f"{seed.table} (it has {', '.join(live.columns)})"
                )
            if column in seed.references:
                parsers.append((column, None, None))
                continue
            if not supported(col):
                raise SeedRefused(
                    f"{seed.file}: row {row.number}: column {column!r}: type {col.sql_type} is "
                    "not supported in seed files"
                )
            parsers.append((column, plain_type(col), converter(col, from_text=seed.from_text)))
        return "".join("1" if c in row.values else "0" for c in given), parsers

    def _refuse_value(self, row: SeedRow, column: str, value: Any, exc: ValueError) -> None:
        col = self.live.columns[column]
        raise SeedRefused(
            f"{self.seed.file}: row {row.number}: column {column!r}: {value!r} does not "
            f"parse as {col.sql_type}: {exc}"
        )

    def _refuse_key(self, row: SeedRow, values: dict[str, Any]) -> None:
        where = f"{self.seed.file}: row {row.number}"
        for column in self.seed.key:
            value = values.get(column)
            if value is None:
                raise SeedRefused(f"{where}: column {column!r}: the key needs a value")
            if isinstance(value, dict | list):
                raise SeedRefused(f"{where}: column {column!r}: a key value must be a scalar")

    def _reference(self, row: SeedRow, column: str, value: Any) -> tuple[Any, ...] | None:
        """A reference's value as the referenced row's natural key, parsed as that table's
        key columns (the file may give 7 or "7" alike); refused if it cannot be one. A key
        the referenced file does not give is looked for among the live rows (`unresolved`)."""
        if value is None:
            return None
        memo = self.resolved[column]
        kept = not isinstance(value, list | dict)  # a list (a several-column key): not kept
        found = memo.get((type(value), value)) if kept else None
        if found is None:
            found = self._resolve(row, column, value)
            if kept:
                memo[(type(value), value)] = found
        key, seeded = found
        if not seeded:
            self.unresolved.append((self.n, column, tuple(self._raw(column, value))))
        return key

    def _raw(self, column: str, value: Any) -> list[Any]:
        raw = value if isinstance(value, list) else [value]
        several = len(self.seed.references[column][1]) > 1
        if self.seed.from_text and several and isinstance(value, str):
            raw = value.split("/")  # CSV: a several-column key as a/b
        return raw

    def _resolve(self, row: SeedRow, column: str, value: Any) -> tuple[Key, bool]:
        seed = self.seed
        ref_table, ref_key = seed.references[column]
        raw = self._raw(column, value)
        where = f"{seed.file}: row {row.number}: column {column!r}"
        if len(raw) != len(ref_key):
            raise SeedRefused(f"{where}: give {ref_table}'s key ({', '.join(ref_key)})")
        shown = show_key(tuple(raw))
        missing = f"{where}: no row of {ref_table} has {', '.join(ref_key)} = {shown}"
        parent = self.schema.get(ref_table)
        if parent is None or any(k not in parent.columns for k in ref_key):
            raise SeedRefused(missing)
        try:
            key = tuple(
                parse(v, parent.columns[k], from_text=True)
                for k, v in zip(ref_key, raw, strict=True)
            )
        except ValueError:
            raise SeedRefused(missing) from None
        seeded = self.parents.get(ref_table)
        return key, seeded is not None and key in seeded.keys


def decide(
    seed: SeedTable,
    rows: list[DesiredRow],
    found: list[tuple[int, str | None, list[str]]],
    gone: list[tuple[str, Key | None, str | None]],
) -> TablePlan:
    """Per mode, what to do, from what comparing with the live rows found: `found` names the
    rows (by index) with no live row (ctid None) or with differing columns, every other row
    is equal to the file; `gone` the recorded keys the file no longer lists, with their live
    row if there is one (key, ctid). The first LISTED rows of each action are listed as
    changes, the rest counted (`left_out`); rows equal to the file are counted only."""
    plan = TablePlan(seed)

    listed = {"create": 0, "update": 0, "unchanged": 0, "delete": 0}
    for n, ctid, fields in sorted(found, key=itemgetter(0)):
        row = rows[n]
        if ctid is None:
            plan.create.append(row)
            plan.created_at.append(n)
            action = "create"
        elif fields and seed.mode != "insert-missing":
            plan.update.append((row, ctid, fields))
            plan.updated_at.append(n)
            action = "update"
        else:
            action = "unchanged"  # an edit insert-missing leaves alone: listed with its fields
        listed[action] += 1
        if listed[action] <= LISTED:
            plan.changes.append(
                Change(
                    kind=seed.kind,
                    name=f"{seed.table}({show_key(row.key)})",
                    action=action,
                    fields=fields,
                    source=f"{seed.file} row {row.number}",
                )
            )
    plan.unchanged = len(rows) - len(plan.create) - len(plan.update)
    for recorded, key, ctid in gone:
        if key is None or ctid is None:
            plan.forget.append(recorded)
        elif seed.mode == "managed":
            plan.delete.append((key, ctid))
            listed["delete"] += 1
            if listed["delete"] <= LISTED:
                name = f"{seed.table}({show_key(key)})"
                plan.changes.append(Change(kind="row", name=name, action="delete"))
    plan.forget.sort()
    # Equal rows are never listed; of the others, those past the first LISTED are counted.
    plan.left_out = {a: n - min(n, LISTED) for a, n in listed.items() if n > LISTED}
    quiet = plan.unchanged - listed["unchanged"]
    if quiet:
        plan.left_out["unchanged"] = plan.left_out.get("unchanged", 0) + quiet
    return plan


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
    plan = TablePlan(seed)
    for row in seed.rows:
        key = tuple(row.values.get(c) for c in seed.key)
        plan.create.append(DesiredRow(row.number, key, dict(row.values)))
        name = f"{seed.table}({show_key(key)})"
        source = f"{seed.file} row {row.number}"
        plan.changes.append(Change(kind=seed.kind, name=name, action="create", source=source))
    return plan
