"""The seed_postgres step: a database's seed files reconciled with its rows, in one
transaction, after its migrations (files and the diff's pure part: conceptor/activities/seed/;
the comparing and writing in SQL: seed/stage.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from conceptor.activities.declared import load_declared
from conceptor.activities.diffs import keep, packed_result
from conceptor.activities.own_loop import on_own_loop
from conceptor.activities.postgres import PostgresActivities
from conceptor.activities.reconcile import check_plan, digest, verify
from conceptor.activities.seed.files import SeedRefused, read_file
from conceptor.activities.seed.plan import (
    Desired,
    LiveTable,
    SeedTable,
    TablePlan,
    counts_line,
    decide,
    desired_rows,
    order,
    record_key,
    unchecked_table,
)
from conceptor.activities.seed.stage import (
    RECORD_TABLE,
    Staged,
    ident,
    live_sums,
    record_sums,
)
from conceptor.activities.seed.values import Column
from conceptor.activities.waiting import heartbeating
from conceptor.contracts import SEED_STEP, Diff, ReconcileInput, StepResult
from conceptor.platform.diff_store import Packed
from conceptor.platform.environment import Database

SEED_REFUSED = "SeedRefused"
SEED_FAILED = "SeedFailed"
# Seeding runs of one database queue up on this lock; "seedrows" in ASCII.
SEED_LOCK_KEY = 0x73656564726F7773
# What seeding inserted, by table and natural key (RECORD_TABLE): `managed` deletes only these.
# A plan's live digest before the tables exist: applying it checks the files only (the
# migrations, which ran first, made the live state the plan could not see).
NOT_MIGRATED = "not-migrated"
_CREATE_RECORD = f"""
CREATE TABLE IF NOT EXISTS {RECORD_TABLE} (
    tbl         text NOT NULL,
    key         text NOT NULL,
    inserted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tbl, key)
)"""
_COLUMNS = """
SELECT c.relname AS tbl, a.attname AS col, t.typname AS type,
       format_type(a.atttypid, a.atttypmod) AS sql_type,
       format_type(a.atttypid, NULL) AS base_type,
       ARRAY(SELECT e.enumlabel FROM pg_enum e WHERE e.enumtypid = t.oid
             ORDER BY e.enumsortorder)::text[] AS labels
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname = ANY($1::text[])
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY c.relname, a.attnum"""
_CONSTRAINTS = """
SELECT c.relname AS tbl, con.contype AS kind, fc.relname AS ref_table,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n
             ORDER BY k.o)::text[] AS cols,
       ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n
             ORDER BY k.o)::text[] AS ref_cols
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class fc ON fc.oid = con.confrelid
WHERE n.nspname = 'public' AND con.contype IN ('p', 'f') AND c.relname = ANY($1::text[])"""


def _as_seen(data: ReconcileInput | None, now: Diff) -> ReconcileInput | None:
    """A saved plan made before the migrations: its live state is the one found now."""
    if data is None or data.expected is None or data.expected.live_digest != NOT_MIGRATED:
        return data
    expected = data.expected.model_copy(update={"live_digest": now.live_digest})
    return data.model_copy(update={"expected": expected})


def seed_tables(db: Database, folder: Path) -> list[SeedTable]:
    """The database's seed declarations with their files' rows, referenced tables first."""
    seeds = []
    for s in db.seed:
        path = (folder / s.file).resolve()
        rows, sha256 = read_file(path, s.file)
        seeds.append(
            SeedTable(
                table=s.table,
                file=s.file,
                key=tuple(s.key),
                mode=s.mode,
                references={c: (r.table, tuple(r.key)) for c, r in s.references.items()},
                rows=rows,
                from_text=path.suffix.lower() == ".csv",
                sha256=sha256,
            )
        )
    return order(seeds)


async def read_schema(conn: asyncpg.Connection, tables: list[str]) -> dict[str, LiveTable]:
    """Columns, primary keys and one-column foreign keys of `tables` (schema public)."""
    out: dict[str, LiveTable] = {}
    for r in await conn.fetch(_COLUMNS, tables):
        live = out.setdefault(r["tbl"], LiveTable(columns={}))
        live.columns[r["col"]] = Column(
            r["col"], r["type"], r["sql_type"], tuple(r["labels"]), r["base_type"]
        )
    for r in await conn.fetch(_CONSTRAINTS, tables):
        found = out.get(r["tbl"])
        if found is None:
            continue
        if r["kind"] == "p":
            found.primary_key = tuple(r["cols"])
        elif len(r["cols"]) == 1 and r["ref_table"] is not None:
            found.foreign[r["cols"][0]] = (r["ref_table"], r["ref_cols"][0])
    return out


async def _has_record(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", RECORD_TABLE))


def desired_digest(seeds: list[SeedTable]) -> str:
    """What the declarations and files say, digested (a plan is refused once it moved): a
    file by the hash of its bytes."""
    return digest(
        [
            (
                s.table,
                s.mode,
                s.key,
                sorted(s.references.items()),
                s.sha256 or [r.values for r in s.rows],
            )
            for s in seeds
        ]
    )


class Seeding:
    """One pass over a database's seed tables on one connection, inside its transaction:
    each file's rows staged once (COPY into a temporary table), compared with the live rows
    by PostgreSQL on every read, written from the staged rows."""

    def __init__(self, conn: asyncpg.Connection, seeds: list[SeedTable], target: str) -> None:
        self.conn = conn
        self.seeds = seeds
        self.target = target
        self.schema: dict[str, LiveTable] = {}
        self.desired: dict[str, Desired] = {}
        self.staged: dict[str, Staged] = {}
        self.plans: dict[str, TablePlan] = {}

    async def read(self, *, live_digest: bool = False) -> Diff:
        """Compare every table's file with its live rows and plan it (refused: SeedRefused);
        `live_digest`: also digest the live state, for a plan and the check of a saved one.

        A table whose live rows and record sum up as its file's (seed/digest.py: one scan)
        is equal to it, row for row; any other is staged and compared row by row."""
        if not self.schema:
            self.schema = await read_schema(self.conn, [s.table for s in self.seeds])
        recorded = await _has_record(self.conn)
        self.plans = {}
        state: list[Any] = []
        records: dict[str, tuple[int, int]] | None = None
        for number, seed in enumerate(self.seeds):
            desired = self.desired.get(seed.table)
            if desired is None:
                live = self.schema.get(seed.table)
                desired = desired_rows(seed, live, self.schema, self.desired)
                self.desired[seed.table] = desired
            # The file's sums, kept from an earlier run over the same file or from staging
            # it (a first load's verifying read): one scan of the live rows tells whether
            # they are equal to the file.
            known = desired.sums.get("rows"), desired.sums.get("records")
            sums = None
            if live_digest or None not in known:
                if records is None:
                    tables = [s.table for s in self.seeds]
                    records = await record_sums(self.conn, tables) if recorded else {}
                rec = records.get(seed.table, (0, 0))
                sums = await live_sums(self.conn, seed, desired, self.schema, rec)
                state.append([seed.table, *sums])
            if sums is not None and sums == known:
                self.plans[seed.table] = decide(seed, desired.rows, [], [])
                continue
            staged = self.staged.get(seed.table)
            if staged is None:
                staged = await self._stage(number, seed, desired)
            found = await staged.compare(self.conn)
            gone = await staged.gone(self.conn) if recorded else []
            self.plans[seed.table] = decide(seed, desired.rows, found, gone)
        return self.diff(digest(state) if live_digest else "")

    async def _stage(self, number: int, seed: SeedTable, desired: Desired) -> Staged:
        staged = Staged(number, seed, desired, self.schema)
        await staged.load(self.conn)
        await staged.check_references(self.conn)
        await staged.sums(self.conn)  # for the next run over the same file
        self.staged[seed.table] = staged
        return staged

    def diff(self, live_digest: str = "") -> Diff:
        plans = [self.plans[s.table] for s in self.seeds]
        left_out: dict[str, int] = {}
        for plan in plans:
            for action, n in plan.left_out.items():
                left_out[action] = left_out.get(action, 0) + n
        return Diff(
            target=self.target,
            changes=[c for p in plans for c in p.changes],
            desired_digest=desired_digest(self.seeds),
            live_digest=live_digest,
            # Rows equal to their file are counted, not listed, and past the first LISTED
            # of a table and action so are the others: naming 100 000 rows would be most of
            # a re-run's time, and say nothing the counts and the first names do not.
            left_out=left_out,
        )

    async def apply(self) -> None:
        """Create and update table by table, referenced tables first (a reference resolves
        to the id of the referenced row by its natural key, in SQL), then delete in reverse
        order; record what was inserted."""
        await self.conn.execute(_CREATE_RECORD)
        for seed in self.seeds:
            plan, staged = self.plans[seed.table], self.staged.get(seed.table)
            if staged is None:
                continue  # equal to its file: nothing to create or update
            if plan.create:
                await staged.insert(self.conn, plan.created_at)
            if plan.update:
                ctids = [ctid for _, ctid, _ in plan.update]
                await staged.update(self.conn, list(zip(plan.updated_at, ctids, strict=True)))
        for seed in reversed(self.seeds):
            plan = self.plans[seed.table]
            if plan.delete:
                await self.conn.execute(
                    f"DELETE FROM {ident(seed.table)} WHERE ctid = ANY($1::text[]::tid[])",
                    [ctid for _, ctid in plan.delete],
                )
            gone = [record_key(k) for k, _ in plan.delete] + plan.forget
            if gone:
                await self.conn.execute(
                    f"DELETE FROM {RECORD_TABLE} WHERE tbl = $1 AND key = ANY($2::text[])",
                    seed.table,
                    gone,
                )


class SeedActivities:
    """The seed step, on the database settings name or a declared one."""

    def __init__(self, postgres: PostgresActivities) -> None:
        self.postgres = postgres

    @activity.defn(name=SEED_STEP)
    async def seed_postgres(self, data: ReconcileInput | None = None) -> StepResult:
        """Reconcile the database's seed rows with its files: checked against the live schema
        before any write, applied in one transaction, read again and verified.
        `plan`: compute, write nothing. `target`: a database of the environment file."""
        env, file = load_declared(SEED_REFUSED)
        name = data.target if data is not None else None
        # No target: the first database, the one settings name.
        named = [d for d in env.databases if name is None or d.name == name]
        db = named[0] if named else None
        if db is None or not db.seed:
            msg = f"{file} declares no database {name!r} with seed data"
            raise ApplicationError(msg, type=SEED_REFUSED, non_retryable=True)
        pg = self.postgres.declared(name) if name else self.postgres
        target = f"seed of database {db.name}"
        try:
            seeds = seed_tables(db, file.resolve().parent)
        except SeedRefused as exc:
            raise ApplicationError(str(exc), type=SEED_REFUSED, non_retryable=True) from None
        plan = data is not None and data.plan
        attempt = activity.info().attempt

        async def work() -> tuple[StepResult, Packed]:
            try:
                conn = await pg.connect()
            except asyncpg.InvalidCatalogNameError:
                if not plan:
                    raise
                return self._unmigrated(seeds, target, attempt)
            try:
                return await self._seed(pg, conn, seeds, target, data, attempt)
            except SeedRefused as exc:
                raise ApplicationError(str(exc), type=SEED_REFUSED, non_retryable=True) from None
            finally:
                await conn.close()

        # Planning 100 000 rows is seconds of Python: on a loop of its own, so the heartbeats
        # (and the worker's other tasks) go on; the full diff is kept from the worker's loop.
        async with heartbeating():
            result, packed = await on_own_loop(work)
            return await keep(pg.settings, result, packed)

    def _unmigrated(
        self,
        seeds: list[SeedTable],
        target: str,
        attempt: int,
        detail: str = "not migrated yet: the files are checked against the schema once it is",
    ) -> tuple[StepResult, Packed]:
        """A plan before the database or its tables exist: every row would be created."""
        changes = [c for s in seeds for c in unchecked_table(s).changes]
        diff = Diff(
            target=target,
            changes=changes,
            desired_digest=desired_digest(seeds),
            live_digest=NOT_MIGRATED,
        )
        return packed_result(diff, planned=True, attempts=attempt, detail=detail)

    async def _seed(
        self,
        pg: PostgresActivities,
        conn: asyncpg.Connection,
        seeds: list[SeedTable],
        target: str,
        data: ReconcileInput | None,
        attempt: int,
    ) -> tuple[StepResult, Packed]:
        seeding = Seeding(conn, seeds, target)
        if data is not None and data.plan:
            schema = await read_schema(conn, [s.table for s in seeds])
            if any(s.table not in schema for s in seeds):
                return self._unmigrated(seeds, target, attempt)
            try:
                async with conn.transaction():  # the staging tables go with it
                    before = await seeding.read(live_digest=True)
            except SeedRefused as exc:
                # A pending migration may make the schema the files need: said, not refused.
                pending = await pg.pending_migrations(conn)
                if not pending:
                    raise
                detail = (
                    f"{len(pending)} migration(s) pending ({', '.join(pending)}): checked "
                    f"against the schema once they are applied; as it is now: {exc}"
                )
                return self._unmigrated(seeds, target, attempt, detail)
            detail = counts_line([seeding.plans[s.table] for s in seeds])
            return packed_result(before, planned=True, attempts=attempt, detail=detail)
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", SEED_LOCK_KEY)
                expected = data is not None and data.expected is not None
                before = await seeding.read(live_digest=expected)
                check_plan(before, _as_seen(data, before))
                detail = counts_line([seeding.plans[s.table] for s in seeds])
                if not before.is_empty:
                    await seeding.apply()
                    # Read again inside the transaction: not converged rolls everything back.
                    verify(await seeding.read())
        except asyncpg.PostgresError as exc:
            msg = f"{target}: {exc.sqlstate} {exc}; it was rolled back, no row of it is written"
            raise ApplicationError(msg, type=SEED_FAILED, non_retryable=True) from None
        return packed_result(before, attempts=attempt, detail=detail)
