"""A seed file's rows staged in a temporary table, compared with the live rows and written by
PostgreSQL: the rows go in by COPY, references resolve by a join on the natural key."""

from __future__ import annotations

from typing import Any

import asyncpg

from conceptor.activities.seed.files import SeedRefused
from conceptor.activities.seed.plan import Desired, Key, LiveTable, SeedTable, record_key

RECORD_TABLE = "conceptor_seed_rows"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Staged:
    """One seeded table: its file's rows in `conceptor_seed_stage_<n>` (dropped at commit),
    and the SQL that compares them with the live table and writes the difference.

    Staged columns are named by position (`c2`, a reference's key `c2_0`, `c2_1`): `_n` is the
    row's index, `_g` which columns it gives ('1' or '0' per column), `_rk` its record key.
    """

    def __init__(
        self, number: int, seed: SeedTable, desired: Desired, schema: dict[str, LiveTable]
    ) -> None:
        self.seed = seed
        self.desired = desired
        self.name = f"conceptor_seed_stage_{number}"
        self.live = schema[seed.table]
        self.schema = schema
        self.table = ident(seed.table)
        self.columns: list[tuple[str, str]] = [("_n", "int4"), ("_g", "text"), ("_rk", "text")]
        self.parts: dict[str, list[str]] = {}  # given column -> its staged columns
        for i, column in enumerate(desired.given):
            if column in seed.references:
                ref_table, ref_key = seed.references[column]
                parent = schema[ref_table].columns
                names = [f"c{i}_{j}" for j in range(len(ref_key))]
                types = [_stage_type(parent[k].base_type, parent[k].sql_type) for k in ref_key]
            else:
                col = self.live.columns[column]
                names, types = [f"c{i}"], [_stage_type(col.base_type, col.sql_type)]
            self.parts[column] = names
            self.columns.extend(zip(names, types, strict=True))

    async def load(self, conn: asyncpg.Connection) -> None:
        """Create the staging table and COPY the file's rows into it."""
        spec = ", ".join(f"{n} {t}" for n, t in self.columns)
        await conn.execute(f"CREATE TEMP TABLE {self.name} ({spec}) ON COMMIT DROP")
        await conn.copy_records_to_table(
            self.name, records=self.desired.staged, columns=[n for n, _ in self.columns]
        )

    async def check_references(self, conn: asyncpg.Connection) -> None:
        """A reference to a key its referenced file does not give must name a live row."""
        by_column: dict[str, list[int]] = {}
        for n, column, _ in self.desired.unresolved:
            by_column.setdefault(column, []).append(n)
        missing: list[int] = []
        for column, rows in by_column.items():
            ref_table, ref_key = self.seed.references[column]
            match = " AND ".join(
                f"p.{ident(k)} = s.{c}" for k, c in zip(ref_key, self.parts[column], strict=True)
            )
            missing.extend(
                await conn.fetchval(
                    f"SELECT coalesce(array_agg(s._n), '{{}}') FROM {self.name} s "
                    f"WHERE s._n = ANY($1::int4[]) AND NOT EXISTS "
                    f"(SELECT 1 FROM {ident(ref_table)} p WHERE {match})",
                    rows,
                )
            )
        if missing:
            first = min(missing)
            n, column, raw = next(u for u in self.desired.unresolved if u[0] == first)
            ref_table, ref_key = self.seed.references[column]
            shown = ", ".join(map(str, raw))
            raise SeedRefused(
                f"{self.seed.file}: row {self.desired.rows[n].number}: column {column!r}: no row "
                f"of {ref_table} has {', '.join(ref_key)} = {shown}"
            )

    def _parent(self, column: str, alias: str) -> str:
        """The referenced table's rows, first of each natural key: key columns k0.., the
        column the reference holds as t."""
        ref_table, ref_key = self.seed.references[column]
        keys = ", ".join(f"p.{ident(k)}" for k in ref_key)
        named = ", ".join(f"p.{ident(k)} AS k{j}" for j, k in enumerate(ref_key))
        target = ident(self.desired.targets[column])
        return (
            f"(SELECT DISTINCT ON ({keys}) {named}, p.{target} AS t FROM {ident(ref_table)} p "
            f"ORDER BY {keys}, p.ctid) {alias}"
        )

    def _live_view(self, columns: list[str]) -> str:
        """The live rows as the file gives them (a reference as the referenced row's natural
        key, `cN_id` the id it holds), the first row (physical order) of each natural key."""
        exprs, joins = ["l.ctid AS _ctid"], []
        for column in columns:
            i = self.desired.given.index(column)
            if column in self.seed.references:
                ref_table, ref_key = self.seed.references[column]
                target = ident(self.desired.targets[column])
                named = ", ".join(f"p.{ident(k)} AS k{j}" for j, k in enumerate(ref_key))
                joins.append(
                    f"LEFT JOIN (SELECT DISTINCT ON (p.{target}) p.{target} AS t, {named} "
                    f"FROM {ident(ref_table)} p ORDER BY p.{target}, p.ctid) r{i} "
                    f"ON r{i}.t = l.{ident(column)}"
                )
                exprs.append(f"l.{ident(column)} AS c{i}_id")
                exprs.extend(f"r{i}.k{j} AS c{i}_{j}" for j in range(len(ref_key)))
            else:
                exprs.append(f"l.{ident(column)} AS c{i}")
        key = ", ".join(p for c in self.seed.key for p in self._parts_of("v", c))
        inner = f"SELECT {', '.join(exprs)} FROM {self.table} l {' '.join(joins)}"
        return f"(SELECT DISTINCT ON ({key}) * FROM ({inner}) v ORDER BY {key}, v._ctid)"

    def _parts_of(self, alias: str, column: str) -> list[str]:
        return [f"{alias}.{p}" for p in self.parts[column]]

    def _differs(self, column: str) -> str:
        i = self.desired.given.index(column)
        given = f"substr(s._g, {i + 1}, 1) = '1'"
        if column in self.seed.references:
            s, v = self._parts_of("s", column), self._parts_of("v", column)
            differs = (
                f"(s.c{i}_0 IS NULL) <> (v.c{i}_id IS NULL) OR "
                f"ROW({', '.join(s)}, NULL) IS DISTINCT FROM ROW({', '.join(v)}, NULL)"
            )
        elif self.live.columns[column].is_json:
            differs = f"s.c{i}::jsonb IS DISTINCT FROM v.c{i}::jsonb"
        else:
            differs = f"s.c{i} IS DISTINCT FROM v.c{i}"
        return f"({given} AND ({differs}))"

    async def sums(self, conn: asyncpg.Connection) -> Sums | None:
        """The file's rows and record keys summed (kept with the parsed rows: computed once
        per file content); None when a row leaves a column out (what the live row holds
        there is not the file's to say, so only comparing row by row tells)."""
        if "rows" not in self.desired.sums:
            found = await conn.fetchrow(
                f"SELECT bool_and(position('0' in s._g) = 0) AS whole, "
                f"{_SUMMED.format(_rendered(self.seed, self.desired, self.schema, 's'))}, "
                f"{_SUMMED.format('s._rk')} FROM {self.name} s"
            )
            if found["whole"] is False:
                return None
            self.desired.sums["rows"] = (found[1], int(found[2]))
            self.desired.sums["records"] = (found[3], int(found[4]))
        return self.desired.sums["rows"], self.desired.sums["records"]

    async def compare(self, conn: asyncpg.Connection) -> list[tuple[int, str | None, list[str]]]:
        """The rows with no live row (ctid None) or with given columns that differ (named);
        every row not listed is equal to the live row of its key. One row comes back, of
        arrays: a first load's 100 000 rows to create are one array, not 100 000 rows."""
        given = self.desired.given
        if not await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {self.table})"):
            return [(n, None, []) for n in range(len(self.desired.rows))]  # a first load
        differs = [self._differs(c) for c in given]
        flags = " || ".join(f"CASE WHEN {d} THEN '1' ELSE '0' END" for d in differs)
        match = " AND ".join(f"v.{p} = s.{p}" for c in self.seed.key for p in self.parts[c])
        found = await conn.fetchrow(
            f"SELECT array_agg(s._n) FILTER (WHERE v._ctid IS NULL) AS missing, "
            f"array_agg(s._n) FILTER (WHERE v._ctid IS NOT NULL) AS changed, "
            f"array_agg(v._ctid::text) FILTER (WHERE v._ctid IS NOT NULL) AS ctids, "
            f"array_agg({flags}) FILTER (WHERE v._ctid IS NOT NULL) AS flags "
            f"FROM {self.name} s LEFT JOIN {self._live_view(given)} v ON {match} "
            f"WHERE v._ctid IS NULL OR {' OR '.join(differs)}"
        )
        out: list[tuple[int, str | None, list[str]]] = [
            (n, None, []) for n in found["missing"] or ()
        ]
        for n, ctid, bits in zip(
            found["changed"] or (), found["ctids"] or (), found["flags"] or (), strict=True
        ):
            out.append((n, ctid, [c for c, bit in zip(given, bits, strict=True) if bit == "1"]))
        return out

    async def gone(self, conn: asyncpg.Connection) -> list[tuple[str, Key | None, str | None]]:
        """The recorded keys of this table the file no longer lists, each with its live row's
        key and ctid when there is one."""
        unlisted = [
            r["key"]
            for r in await conn.fetch(
                f"SELECT r.key FROM {RECORD_TABLE} r WHERE r.tbl = $1 AND NOT EXISTS "
                f"(SELECT 1 FROM {self.name} s WHERE s._rk = r.key)",
                self.seed.table,
            )
        ]
        if not unlisted:
            return []
        live: dict[str, tuple[Key, str]] = {}
        view = self._live_view(list(self.seed.key))
        rows = await conn.fetch(f"SELECT x.*, x._ctid::text AS ctid FROM {view} x ORDER BY x._ctid")
        for r in rows:
            key = tuple(self._natural(r, c) for c in self.seed.key)
            live.setdefault(record_key(key), (key, r["ctid"]))
        out: list[tuple[str, Key | None, str | None]] = []
        for recorded in unlisted:
            found = live.get(recorded)
            out.append((recorded, *found) if found else (recorded, None, None))
        return out

    def _natural(self, row: asyncpg.Record, column: str) -> Any:
        i = self.desired.given.index(column)
        if column not in self.seed.references:
            return row[f"c{i}"]
        if row[f"c{i}_id"] is None:
            return None
        if row[f"c{i}_0"] is None:
            return ("unknown id", row[f"c{i}_id"])  # equal to no natural key
        return tuple(row[p] for p in self.parts[column])

    def _written(self, column: str) -> str:
        """What a given column is written as: a reference as the id its key resolves to."""
        if column in self.seed.references:
            return f"w{self.desired.given.index(column)}.t"
        return f"s.{self.parts[column][0]}"

    def _write_joins(self) -> str:
        joins = []
        for column in self.desired.given:
            if column in self.seed.references:
                i = self.desired.given.index(column)
                on = " AND ".join(f"w{i}.k{j} = s.{p}" for j, p in enumerate(self.parts[column]))
                joins.append(f"LEFT JOIN {self._parent(column, f'w{i}')} ON {on}")
        return " ".join(joins)

    async def insert(self, conn: asyncpg.Connection, rows: list[int]) -> None:
        """Insert these staged rows (by index) in file order, each group of rows that give
        the same columns in one statement; record them as seeding's."""
        masks: dict[str, list[int]] = {}
        for n in rows:
            masks.setdefault(self.desired.staged[n][1], []).append(n)
        for mask, group in masks.items():
            columns = [c for c, bit in zip(self.desired.given, mask, strict=True) if bit == "1"]
            await conn.execute(
                f"INSERT INTO {self.table} ({', '.join(ident(c) for c in columns)}) "
                f"SELECT {', '.join(self._written(c) for c in columns)} FROM {self.name} s "
                f"{self._write_joins()} WHERE s._n = ANY($1::int4[]) ORDER BY s._n",
                group,
            )
        recorded = await conn.fetchval(
            f"SELECT EXISTS (SELECT 1 FROM {RECORD_TABLE} WHERE tbl = $1)", self.seed.table
        )
        if not recorded:
            # None yet (a first load): COPY, in the index's order (C.UTF-8: code points),
            # three times as fast as INSERT ... SELECT for 100 000 keys.
            keys = sorted(self.desired.staged[n][2] for n in rows)
            await conn.copy_records_to_table(
                RECORD_TABLE, records=[(self.seed.table, k) for k in keys], columns=["tbl", "key"]
            )
            return
        # Only the keys not recorded yet (a row deleted by hand, created again), in order.
        await conn.execute(
            f"INSERT INTO {RECORD_TABLE} (tbl, key) SELECT $1::text, s._rk FROM {self.name} s "
            f"WHERE s._n = ANY($2::int4[]) AND NOT EXISTS (SELECT 1 FROM {RECORD_TABLE} r "
            "WHERE r.tbl = $1 AND r.key = s._rk) ORDER BY s._rk",
            self.seed.table,
            rows,
        )

    async def update(self, conn: asyncpg.Connection, rows: list[tuple[int, str]]) -> None:
        """Set the given columns of these live rows (by ctid) to their staged rows' values."""
        sets = []
        for i, column in enumerate(self.desired.given):
            if column in self.seed.key:
                continue  # equal: the rows were matched by it
            sets.append(
                f"{ident(column)} = CASE WHEN substr(s._g, {i + 1}, 1) = '1' "
                f"THEN {self._written(column)} ELSE t.{ident(column)} END"
            )
        if not sets:
            return
        await conn.execute(
            f"UPDATE {self.table} t SET {', '.join(sets)} FROM {self.name} s "
            f"{self._write_joins()} JOIN unnest($1::int4[], $2::text[]) AS u(n, ctid) "
            "ON u.n = s._n WHERE t.ctid = u.ctid::tid",
            [n for n, _ in rows],
            [ctid for _, ctid in rows],
        )


# How many rows, and the sum of each one's 64-bit hash (PostgreSQL's own, hashtextextended:
# a third of MD5's cost): an order-free digest.
_SUMMED = "count(*), coalesce(sum(hashtextextended({}, 0)::numeric), 0)::text"
Sums = tuple[tuple[int, int], tuple[int, int]]  # (rows, sum), (record keys, sum)


def _rendered(seed: SeedTable, desired: Desired, schema: dict[str, LiveTable], alias: str) -> str:
    """A row's given columns as one text, alike for a live row (alias l) and a staged one
    (alias s): a value as quote_nullable renders it (JSON as jsonb), a reference as the
    referenced row's key (a live id no row has: 'UNKNOWN')."""
    live = schema[seed.table]
    parts = []
    for i, column in enumerate(desired.given):
        cast = "::jsonb" if column in live.columns and live.columns[column].is_json else ""
        if column not in seed.references:
            value = f"l.{ident(column)}" if alias == "l" else f"s.c{i}"
            parts.append(f"quote_nullable({value}{cast})")
            continue
        ref_key = seed.references[column][1]
        if alias == "l":
            target = ident(desired.targets[column])
            keys = ", ".join(f"quote_nullable(r{i}.{ident(k)})" for k in ref_key)
            parts.append(
                f"CASE WHEN l.{ident(column)} IS NULL THEN 'NULL' WHEN r{i}.{target} IS NULL "
                f"THEN 'UNKNOWN' ELSE concat_ws(',', {keys}) END"
            )
        else:
            keys = ", ".join(f"quote_nullable(s.c{i}_{j})" for j in range(len(ref_key)))
            parts.append(f"CASE WHEN s.c{i}_0 IS NULL THEN 'NULL' ELSE concat_ws(',', {keys}) END")
    return f"concat_ws(',', {', '.join(parts)})"


async def record_sums(conn: asyncpg.Connection, tables: list[str]) -> dict[str, tuple[int, int]]:
    """The record keys of each table, summed as `Staged.sums` sums the file's (one scan)."""
    rows = await conn.fetch(
        f"SELECT r.tbl, {_SUMMED.format('r.key')} FROM {RECORD_TABLE} r "
        "WHERE r.tbl = ANY($1::text[]) GROUP BY r.tbl",
        tables,
    )
    return {r[0]: (r[1], int(r[2])) for r in rows}


async def live_sums(
    conn: asyncpg.Connection,
    seed: SeedTable,
    desired: Desired,
    schema: dict[str, LiveTable],
    records: tuple[int, int],
) -> Sums:
    """The live rows (their given columns) summed as `Staged.sums` sums the file's, with the
    table's record keys' sums: equal sums, equal rows and records."""
    joins = []
    for i, column in enumerate(desired.given):
        if column not in seed.references:
            continue
        ref_table = seed.references[column][0]
        target = ident(desired.targets[column])
        source = ident(ref_table)
        if schema[ref_table].primary_key != (desired.targets[column],):  # first row per id
            source = (
                f"(SELECT DISTINCT ON (p.{target}) p.* FROM {source} p ORDER BY p.{target}, p.ctid)"
            )
        joins.append(f"LEFT JOIN {source} r{i} ON r{i}.{target} = l.{ident(column)}")
    summed = _SUMMED.format(_rendered(seed, desired, schema, "l"))
    count, total = await conn.fetchrow(
        f"SELECT {summed} FROM {ident(seed.table)} l {' '.join(joins)}"
    )
    return (count, int(total)), records


def _stage_type(base: str, sql_type: str) -> str:
    """The type a value is staged as: the column's without its length or precision (a
    value too long fails the write, with PostgreSQL's message, not the plan)."""
    return base or sql_type
