"""Seed data at size: 100 000 rows in 3 related tables, seeded by provisioning against COPY.

Runs its own PostgreSQL, Redis and Temporal (port prefix 476, throwaway data) and an in-process
core worker. After one untimed round of each (the fresh server's first writes create its WAL
segments), each round, alternating which goes first, on a fresh database with the same
schema (users; assets referencing users; tags):

- ours: the `seed_postgres` step of a `ProvisionWorkflow` loading the seed files (users as
  CSV, assets as JSON with each owner given by the user's email, tags as YAML), the step's own
  duration, the files parsed afresh; then an unchanged re-run of the same step on the same
  worker, whose writes are counted by PostgreSQL itself (`pg_stat_user_tables`: rows
  inserted, updated and deleted);
- the baseline: `COPY` of the same rows (owners already resolved to ids, as COPY needs them).

Targets: first load <= 3x COPY; unchanged re-run <= 2 s with 0 rows written (medians of
--runs). --quick: one round of 10 000 rows, to check that the benchmark runs end to end.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import shutil
import signal
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from _options import add_options, exit_if_missed, parse_options, verdict, write_results
from _stack import stack_env  # bench/_stack.py: run as `python bench/<name>.py`
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table
from temporalio.client import Client
from temporalio.worker import Worker

from conceptor.activities.provisioning import provisioning_activities
from conceptor.activities.seed.plan import forget_parsed
from conceptor.client.provisioning import start_provision
from conceptor.platform.devservices.stack import LocalStack
from conceptor.platform.environment import FILE_VARIABLE
from conceptor.platform.settings import REPO_ROOT, Settings
from conceptor.platform.temporal import connect
from conceptor.workflows.provision import PROVISIONING_WORKFLOWS, ProvisionWorkflow

sys.path.insert(0, str(REPO_ROOT))
from tests.integration.provision_support import superuser

PREFIX = "476"
SERVICES = ("postgres", "redis", "temporal")
ROWS = 100_000  # users 10%, tags 10%, assets the rest
QUICK_ROWS = 10_000
TARGET_RATIO = 3.0
TARGET_RERUN_S = 2.0
STEPS = ["wait_for_postgres", "migrate_postgres", "seed_postgres"]
SCHEMA = """
CREATE TABLE users (
    id serial PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL, active boolean
);
CREATE TABLE assets (
    id bigserial PRIMARY KEY, owner_id integer NOT NULL REFERENCES users (id),
    title text NOT NULL, size integer, UNIQUE (owner_id, title)
);
CREATE TABLE tags (id serial PRIMARY KEY, label text NOT NULL UNIQUE, note text);
"""


def rows(total: int) -> dict[str, list[dict[str, Any]]]:
    """The same rows every time: 10% users, 10% tags, the rest assets spread over the users."""
    users = total // 10
    users_rows = [
        {"email": f"user{i}@example.test", "name": f"Üser, number {i}", "active": i % 3 != 0}
        for i in range(users)
    ]
    assets = [
        {"owner_id": f"user{i % users}@example.test", "title": f"asset {i}", "size": i % 5000}
        for i in range(total - 2 * users)
    ]
    tags = [{"label": f"tag-{i}", "note": None if i % 2 else f"note {i}"} for i in range(users)]
    return {"users": users_rows, "assets": assets, "tags": tags}


def write_stack(folder: Path, database: str, data: dict[str, list[dict[str, Any]]]) -> Path:
    """Migrations, seed files and the environment file declaring them."""
    (folder / "migrations").mkdir(parents=True)
    (folder / "migrations" / "0001_schema.sql").write_text(SCHEMA)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["email", "name", "active"])
    writer.writeheader()
    writer.writerows({**r, "active": str(r["active"]).lower()} for r in data["users"])
    (folder / "users.csv").write_text(out.getvalue(), encoding="utf-8")
    (folder / "assets.json").write_text(json.dumps(data["assets"]))
    (folder / "tags.yaml").write_text("".join(f"- {json.dumps(r)}\n" for r in data["tags"]))
    file = folder / "environment.yaml"
    file.write_text(
        f"""apiVersion: conceptor/v1
services: {{keycloak: false, minio: false}}
databases:
  - name: {database}
    migrations: migrations
    seed:
      - {{table: users, file: users.csv, key: [email]}}
      - table: assets
        file: assets.json
        key: [owner_id, title]
        references: {{owner_id: {{table: users, key: [email]}}}}
      - {{table: tags, file: tags.yaml, key: [label]}}
queues:
  - name: core
    declaration: conceptor.workers.declarations:CORE
"""
    )
    return file


class Bench:
    """One stack; each measurement on a database of its own, dropped after it."""

    def __init__(self, settings: Settings, client: Client, tmp: Path) -> None:
        self.settings = settings
        self.client = client
        self.tmp = tmp

    def dsn(self, database: str) -> str:
        return self.settings.postgres_dsn.rsplit("/", 1)[0] + f"/{database}"

    async def database(self) -> str:
        name = f"seedbench_{uuid.uuid4().hex[:8]}"
        conn = await superuser(self.settings)
        try:
            await conn.execute(f'CREATE DATABASE "{name}" OWNER "{self.settings.postgres_user}"')
        finally:
            await conn.close()
        return name

    async def drop(self, name: str) -> None:
        conn = await superuser(self.settings)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    async def written(self, database: str) -> int:
        """Rows inserted, updated and deleted in the database so far, as PostgreSQL counts."""
        conn = await asyncpg.connect(self.dsn(database))
        try:
            await conn.execute("SELECT pg_stat_force_next_flush()")
            value = await conn.fetchval(
                "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) "
                "FROM pg_stat_user_tables WHERE relname IN ('users', 'assets', 'tags')"
            )
        finally:
            await conn.close()
        return int(value)

    async def ours(self, data: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        # Every round writes the same files: the first load of each is measured without the
        # rows parsed by the round before (the re-run, on the same worker, keeps them).
        forget_parsed()
        database = await self.database()
        folder = self.tmp / database
        os.environ[FILE_VARIABLE] = str(write_stack(folder, database, data))
        settings = self.settings.model_copy(
            update={
                "postgres_dsn_override": SecretStr(self.dsn(database)),
                "migrations_dir": folder / "migrations",
                "drift_interval_seconds": 0.0,
                "drift_watch_schedule_id": f"drift-watch-{database}",
            }
        )
        queue = f"bench-seed-{uuid.uuid4().hex[:8]}"
        worker = Worker(
            self.client,
            task_queue=queue,
            workflows=PROVISIONING_WORKFLOWS,
            activities=provisioning_activities(settings),
        )
        try:
            async with worker:
                first = await self._run(queue)
                before = await self.written(database)
                rerun = await self._run(queue)
                rerun["rows_written"] = await self.written(database) - before
        finally:
            await self.drop(database)
            shutil.rmtree(folder, ignore_errors=True)
        return {"first": first, "rerun": rerun}

    async def _run(self, queue: str) -> dict[str, Any]:
        handle = await start_provision(
            self.client, steps=STEPS, workflow_id=f"bench-{uuid.uuid4()}", task_queue=queue
        )
        result = await handle.result()
        progress = await handle.query(ProvisionWorkflow.progress)
        step = next(p for p in progress.steps if p.step == "seed_postgres")
        seeded = result.steps["seed_postgres"]
        return {
            "seconds": step.duration_seconds,
            "outcome": seeded.outcome,
            "counts": seeded.counts,
        }

    async def copy(self, data: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        """COPY of the same rows into the same schema; owners resolved to ids beforehand."""
        database = await self.database()
        conn = await asyncpg.connect(self.dsn(database))
        try:
            await conn.execute(SCHEMA)
            ids = {u["email"]: i + 1 for i, u in enumerate(data["users"])}
            users = [
                (i + 1, u["email"], u["name"], u["active"]) for i, u in enumerate(data["users"])
            ]
            assets = [(ids[a["owner_id"]], a["title"], a["size"]) for a in data["assets"]]
            tags = [(t["label"], t["note"]) for t in data["tags"]]
            started = time.perf_counter()
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "users", records=users, columns=["id", "email", "name", "active"]
                )
                await conn.copy_records_to_table(
                    "assets", records=assets, columns=["owner_id", "title", "size"]
                )
                await conn.copy_records_to_table("tags", records=tags, columns=["label", "note"])
            seconds = time.perf_counter() - started
        finally:
            await conn.close()
            await self.drop(database)
        return {"seconds": seconds}


async def measure(settings: Settings, total: int, runs: int, tmp: Path) -> dict[str, Any]:
    client = await connect(settings)
    bench = Bench(settings, client, tmp)
    data = rows(total)
    # One untimed round first: the fresh server's first 100 000 rows also create its WAL
    # segments and warm its catalogs, a cost the first measured round alone would pay.
    await bench.copy(data)
    await bench.ours(data)
    out: dict[str, list[dict[str, Any]]] = {"ours": [], "copy": []}
    for i in range(runs):
        for which in ("ours", "copy") if i % 2 == 0 else ("copy", "ours"):
            run = await (bench.ours(data) if which == "ours" else bench.copy(data))
            out[which].append(run)
            shown = run["first"]["seconds"] if which == "ours" else run["seconds"]
            print(f"  round {i + 1}: {which} {shown:.2f} s", flush=True)
    return {"rows": total, **out}


def summarize(data: dict[str, Any], console: Console) -> dict[str, Any]:
    ours, copies = data["ours"], data["copy"]
    first = statistics.median(r["first"]["seconds"] for r in ours)
    rerun = statistics.median(r["rerun"]["seconds"] for r in ours)
    copy = statistics.median(r["seconds"] for r in copies)
    written = max(r["rerun"]["rows_written"] for r in ours)
    table = Table(title=f"seed data, {data['rows']:,} rows in 3 tables (medians of {len(ours)})")
    for col in ("first load", "COPY", "ratio", "unchanged re-run", "rows written on re-run"):
        table.add_column(col, justify="right")
    table.add_row(f"{first:.2f} s", f"{copy:.2f} s", f"{first / copy:.2f}x", f"{rerun:.2f} s",
                  str(written))  # fmt: skip
    console.print(table)
    judged = verdict(
        {
            "first_load_ratio": first / copy <= TARGET_RATIO,
            "rerun_seconds": rerun <= TARGET_RERUN_S,
            "rerun_writes": written == 0,
            "rerun_unchanged": all(r["rerun"]["outcome"] == "unchanged" for r in ours),
            "first_created": all(r["first"]["outcome"] == "created" for r in ours),
        },
        console.print,
    )
    return {
        "runs": len(ours),
        "rows": data["rows"],
        "first_load_s": first,
        "copy_s": copy,
        "ratio": first / copy,
        "rerun_s": rerun,
        "rerun_rows_written": written,
        **judged,
        "samples": data,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_options(parser, runs=3)
    parser.add_argument("--prefix", default=PREFIX)
    parser.add_argument("--rows", type=int, default=ROWS)
    args = parse_options(parser)
    tmp, env = stack_env("seed", args.prefix)
    settings = Settings()
    stack = LocalStack(settings, env=env, log_dir=tmp / "logs", services=SERVICES)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stops the servers (finally)
    try:
        stack.start(timeout=300)
        total = QUICK_ROWS if args.quick else args.rows
        data = asyncio.run(measure(settings, total, args.runs, tmp))
    finally:
        stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    summary = summarize(data, Console(width=120))
    write_results(args, "seed", summary)
    exit_if_missed(args, summary["targets_met"])
    # Whatever the load: a re-run writes no row and says unchanged, a first load creates.
    checks = summary["checks"]
    if not (checks["rerun_writes"] and checks["rerun_unchanged"] and checks["first_created"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
