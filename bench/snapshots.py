"""Snapshots at size: a 1 GB database and 1 GB of objects, saved and restored by the snapshot
workflows against pg_dump/pg_restore plus a client-side copy of the objects, in the same run.

Runs its own PostgreSQL, MinIO and Temporal (port prefix 463, throwaway data; no realm is
declared, so Keycloak does not run) and an in-process core worker. Each round, alternating
which goes first:

- ours: `SnapshotSaveWorkflow` (CREATE DATABASE … TEMPLATE, server-side object copies), then,
  once its spares are made (`SnapshotSpareWorkflow`, in the background after the save; timed
  and printed, as the time within which a restore right after a save waits for them), the
  live state damaged (a table's rows deleted, every object deleted), then
  `SnapshotRestoreWorkflow`, each timed from start to result;
- the baseline: `pg_dump -Fc` of the database and a download of every object to local disk
  (save), then the same damage, then a fresh database restored by `pg_restore` and every
  object uploaded again (restore).
Both restores are checked: the table's row count and every object's size are as saved.

The bucket keeps versions (`versioning: true`), so the restore brings the deleted objects back
from their versions; `--unversioned` measures a bucket without versions, whose restore copies
every object back (results in snapshots_unversioned.json).

Targets: save and restore each <= 20 s, and each >= 10x faster than the baseline (medians of
--runs). --quick: one round of 20 MB and 20 MB, to check that the benchmark runs end to end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from _options import add_options, exit_if_missed, parse_options, verdict, write_results
from _stack import stack_env  # bench/_stack.py: run as `python bench/<name>.py`
from botocore.exceptions import ClientError
from rich.console import Console
from rich.table import Table
from temporalio.client import Client
from temporalio.worker import Worker

from conceptor.activities.provisioning import provisioning_activities
from conceptor.activities.snapshot.activities import snapshot_activities
from conceptor.activities.snapshot.archive import pg_tool
from conceptor.platform.devservices.stack import LocalStack
from conceptor.platform.environment import FILE_VARIABLE
from conceptor.platform.s3 import s3_client
from conceptor.platform.settings import REPO_ROOT, Settings
from conceptor.platform.temporal import connect
from conceptor.snapshot_contracts import (
    SNAPSHOT_RESTORE_WORKFLOW,
    SNAPSHOT_SAVE_WORKFLOW,
    RestoreResult,
    SnapshotManifest,
    SnapshotRequest,
    spare_workflow_id,
)
from conceptor.workflows.provision import PROVISIONING_WORKFLOWS
from conceptor.workflows.snapshot import SNAPSHOT_WORKFLOW_CLASSES

sys.path.insert(0, str(REPO_ROOT))
from tests.integration.provision_support import superuser

PREFIX = "463"
SERVICES = ("postgres", "minio", "temporal")
DATABASE = "bench_snap"
BUCKET = "bench-objects"
MIB = 1024 * 1024
DB_MB, OBJECTS_MB, OBJECT_MB = 1024, 1024, 10
QUICK_MB = 20
TARGET_SECONDS = 20.0
TARGET_SPEEDUP = 10.0
QUEUE = "bench-snapshots"


def environment_file(folder: Path, versioning: bool) -> Path:
    (folder / "migrations").mkdir(parents=True, exist_ok=True)
    (folder / "migrations" / "0001_rows.sql").write_text(
        "CREATE TABLE rows (id bigint PRIMARY KEY, body text NOT NULL);\n"
    )
    file = folder / "environment.yaml"
    file.write_text(
        f"""apiVersion: conceptor/v1
services: {{keycloak: false, redis: false, mailpit: false, front-door: false, db-tools: false}}
databases:
  - name: {DATABASE}
    migrations: migrations
realms: []
buckets:
  - name: {BUCKET}
    policy: private
    versioning: {str(versioning).lower()}
queues:
  - name: core
    declaration: conceptor.workers.declarations:CORE
"""
    )
    return file


class Bench:
    def __init__(self, settings: Settings, client: Client, tmp: Path, versioning: bool) -> None:
        self.settings = settings
        self.versioning = versioning
        self.client = client
        self.tmp = tmp
        self.dsn = settings.postgres_dsn.rsplit("/", 1)[0] + f"/{DATABASE}"

    async def fill(self, db_mb: int, objects_mb: int) -> dict[str, int]:
        """Rows of about 1 KiB up to `db_mb`, and `objects_mb` of random objects."""
        admin = await superuser(self.settings)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
            await admin.execute(
                f'CREATE DATABASE "{DATABASE}" OWNER "{self.settings.postgres_user}"'
            )
        finally:
            await admin.close()
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute("CREATE TABLE rows (id bigint PRIMARY KEY, body text NOT NULL)")
            await conn.execute(
                "CREATE TABLE schema_migrations (filename text PRIMARY KEY, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now(), duration_ms integer NOT NULL)"
            )
            await conn.execute(
                "INSERT INTO schema_migrations VALUES ('0001_rows.sql', '-', now(), 0)"
            )
            # ~1 KiB per row of text that does not compress to nothing (md5 chains).
            rows = db_mb * 1024 * 96 // 100  # about 1 KiB a row with its index entry
            batch = 100_000
            for start in range(0, rows, batch):
                await conn.execute(
                    "INSERT INTO rows SELECT g, string_agg(md5(g::text || ':' || i::text), '') "
                    "FROM generate_series($1::bigint, $2::bigint) g, generate_series(1, 30) i "
                    "GROUP BY g",
                    start,
                    min(start + batch, rows) - 1,
                )
            await conn.execute("VACUUM ANALYZE rows")
            size = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
            count = int(await conn.fetchval("SELECT count(*) FROM rows"))
        finally:
            await conn.close()
        async with s3_client(self.settings) as s3:
            with contextlib.suppress(ClientError):  # exists from an earlier round
                await s3.create_bucket(Bucket=BUCKET)
            status = "Enabled" if self.versioning else "Suspended"
            await s3.put_bucket_versioning(
                Bucket=BUCKET, VersioningConfiguration={"Status": status}
            )
            n = max(1, objects_mb // OBJECT_MB)
            each = objects_mb * MIB // n
            for i in range(n):
                await s3.put_object(Bucket=BUCKET, Key=f"blob/{i:04d}.bin", Body=os.urandom(each))
        return {"db_bytes": size, "rows": count, "objects": n, "object_bytes": n * each}

    async def damage(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute("DELETE FROM rows WHERE id % 2 = 0")
        finally:
            await conn.close()
        async with s3_client(self.settings) as s3:
            listed = await s3.list_objects_v2(Bucket=BUCKET)
            keys = [{"Key": o["Key"]} for o in listed.get("Contents", [])]
            if keys:
                await s3.delete_objects(Bucket=BUCKET, Delete={"Objects": keys, "Quiet": True})

    async def state(self) -> dict[str, Any]:
        conn = await asyncpg.connect(self.dsn)
        try:
            count = int(await conn.fetchval("SELECT count(*) FROM rows"))
        finally:
            await conn.close()
        async with s3_client(self.settings) as s3:
            listed = await s3.list_objects_v2(Bucket=BUCKET)
            sizes = {o["Key"]: int(o["Size"]) for o in listed.get("Contents", [])}
        return {"rows": count, "objects": sizes}

    async def _workflow(self, workflow: str, name: str, result_type: type[Any]) -> Any:
        return await self.client.execute_workflow(
            workflow,
            SnapshotRequest(name=name),
            id=f"bench-{workflow}-{name}",
            task_queue=QUEUE,
            result_type=result_type,
        )

    async def ours(self) -> dict[str, Any]:
        name = f"bench-{uuid.uuid4().hex[:8]}"
        before = await self.state()
        started = time.monotonic()
        manifest = await self._workflow(SNAPSHOT_SAVE_WORKFLOW, name, SnapshotManifest)
        save = time.monotonic() - started
        await self.client.get_workflow_handle(spare_workflow_id(name, True)).result()
        spare = time.monotonic() - started - save
        await self.damage()
        started = time.monotonic()
        result = await self._workflow(SNAPSHOT_RESTORE_WORKFLOW, name, RestoreResult)
        restore = time.monotonic() - started
        restored = await self.state() == before
        await self._workflow("SnapshotDeleteWorkflow", name, int)
        # Where the time went: each part's own activity, as the manifest and result say.
        parts = {
            "save": {
                **{f"postgres:{d.database}": d.seconds for d in manifest.databases},
                **{f"minio:{b.bucket}": b.seconds for b in manifest.buckets},
            },
            "restore": {p.part: p.seconds for p in result.restored},
            "spares_after_save": round(spare, 3),
        }
        print(f"    parts: {parts}", flush=True)
        print(f"    restored: {[p.detail for p in result.restored]}", flush=True)
        return {"save_s": save, "restore_s": restore, "restored": restored, "parts": parts}

    def _pg(self, tool: str, *args: str) -> None:
        env = {
            **os.environ,
            "PGPASSWORD": self.settings.postgres_superuser_password.get_secret_value(),
        }
        server = [
            "-h",
            self.settings.host,
            "-p",
            str(self.settings.port("postgres")),
            "-U",
            "postgres",
        ]
        subprocess.run(
            [str(pg_tool(tool)), *server, *args], env=env, check=True, capture_output=True
        )

    async def baseline(self) -> dict[str, Any]:
        before = await self.state()
        dump = self.tmp / "dump.pgc"
        folder = self.tmp / "objects"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        started = started_save = time.monotonic()
        await asyncio.to_thread(self._pg, "pg_dump", "-Fc", "-f", str(dump), "-d", DATABASE)
        dumped = time.monotonic()
        async with s3_client(self.settings) as s3:
            for key in before["objects"]:
                body = await (await s3.get_object(Bucket=BUCKET, Key=key))["Body"].read()
                (folder / key.replace("/", "_")).write_bytes(body)
        save = time.monotonic() - started
        await self.damage()
        started = time.monotonic()
        admin = await superuser(self.settings)
        try:
            await admin.execute(f'DROP DATABASE "{DATABASE}" WITH (FORCE)')
            await admin.execute(
                f'CREATE DATABASE "{DATABASE}" OWNER "{self.settings.postgres_user}"'
            )
        finally:
            await admin.close()
        await asyncio.to_thread(self._pg, "pg_restore", "-d", DATABASE, str(dump))
        pg_restored = time.monotonic()
        async with s3_client(self.settings) as s3:
            for key in before["objects"]:
                body = (folder / key.replace("/", "_")).read_bytes()
                await s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        restore = time.monotonic() - started
        restored = await self.state() == before
        dump.unlink()
        shutil.rmtree(folder)
        # Where the baseline's time went, as for ours (the steps run one after the other).
        parts = {
            "save": {"pg_dump": round(dumped - started_save, 3),
                     "download": round(save - (dumped - started_save), 3)},
            "restore": {"pg_restore": round(pg_restored - started, 3),
                        "upload": round(restore - (pg_restored - started), 3)},
        }  # fmt: skip
        print(f"    parts: {parts}", flush=True)
        return {"save_s": save, "restore_s": restore, "restored": restored, "parts": parts}


async def measure(
    settings: Settings, db_mb: int, objects_mb: int, runs: int, tmp: Path, versioning: bool
) -> dict[str, Any]:
    client = await connect(settings)
    bench = Bench(settings, client, tmp, versioning)
    sizes = await bench.fill(db_mb, objects_mb)
    print(f"  filled: {sizes}", flush=True)
    out: dict[str, list[dict[str, Any]]] = {"ours": [], "baseline": []}
    worker = Worker(
        client,
        task_queue=QUEUE,
        workflows=[*PROVISIONING_WORKFLOWS, *SNAPSHOT_WORKFLOW_CLASSES],
        activities=[*provisioning_activities(settings), *snapshot_activities(settings)],
    )
    async with worker:
        for i in range(runs):
            for which in ("ours", "baseline") if i % 2 == 0 else ("baseline", "ours"):
                run = await (bench.ours() if which == "ours" else bench.baseline())
                out[which].append(run)
                print(
                    f"  round {i + 1}: {which} save {run['save_s']:.2f} s, "
                    f"restore {run['restore_s']:.2f} s, restored: {run['restored']}",
                    flush=True,
                )
    return {**sizes, **out, "versioning": versioning}


def summarize(data: dict[str, Any], console: Console) -> dict[str, Any]:
    ours, base = data["ours"], data["baseline"]
    med = {
        f"{who}_{op}": statistics.median(r[f"{op}_s"] for r in runs)
        for who, runs in (("ours", ours), ("baseline", base))
        for op in ("save", "restore")
    }
    spares = statistics.median(r["parts"]["spares_after_save"] for r in ours)
    title = (
        f"snapshots of a {data['db_bytes'] / MIB:,.0f} MiB database and "
        f"{data['object_bytes'] / MIB:,.0f} MiB in {data['objects']} objects, a bucket "
        f"{'with' if data['versioning'] else 'without'} versions (medians of {len(ours)})"
    )
    table = Table(title=title)
    for col in ("", "snapshot workflows", "pg_dump/pg_restore + client copy", "speed-up"):
        table.add_column(col, justify="right")
    for op in ("save", "restore"):
        table.add_row(op, f"{med[f'ours_{op}']:.2f} s", f"{med[f'baseline_{op}']:.2f} s",
                      f"{med[f'baseline_{op}'] / med[f'ours_{op}']:.1f}x")  # fmt: skip
    console.print(table)
    console.print(f"spares made in the background after the save: {spares:.2f} s")
    judged = verdict(
        {
            "save_seconds": med["ours_save"] <= TARGET_SECONDS,
            "restore_seconds": med["ours_restore"] <= TARGET_SECONDS,
            "save_speedup": med["baseline_save"] / med["ours_save"] >= TARGET_SPEEDUP,
            "restore_speedup": med["baseline_restore"] / med["ours_restore"] >= TARGET_SPEEDUP,
            "restored_equal": all(r["restored"] for r in [*ours, *base]),
        },
        console.print,
    )
    return {
        "runs": len(ours),
        "db_bytes": data["db_bytes"],
        "object_bytes": data["object_bytes"],
        "objects": data["objects"],
        "bucket_versioning": data["versioning"],
        "spares_after_save_s": spares,
        **med,
        "save_speedup": med["baseline_save"] / med["ours_save"],
        "restore_speedup": med["baseline_restore"] / med["ours_restore"],
        **judged,
        "samples": data,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_options(parser, runs=3)
    parser.add_argument("--prefix", default=PREFIX)
    parser.add_argument("--db-mb", type=int, default=DB_MB)
    parser.add_argument("--objects-mb", type=int, default=OBJECTS_MB)
    parser.add_argument(
        "--unversioned", action="store_true", help="a bucket without versions: copies only"
    )
    args = parse_options(parser)
    versioning = not args.unversioned
    tmp, env = stack_env("snapshots", args.prefix)
    env["CENTRAL_POSTGRES_DB"] = DATABASE  # the servers' launchers read it too
    os.environ.update({FILE_VARIABLE: str(environment_file(tmp / "env", versioning)), **env})
    settings = Settings()
    stack = LocalStack(settings, env=env, log_dir=tmp / "logs", services=SERVICES)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stops the servers (finally)
    try:
        stack.start(timeout=300)
        db_mb, objects_mb = (QUICK_MB, QUICK_MB) if args.quick else (args.db_mb, args.objects_mb)
        data = asyncio.run(measure(settings, db_mb, objects_mb, args.runs, tmp, versioning))
    finally:
        stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    summary = summarize(data, Console(width=120))
    write_results(args, "snapshots" if versioning else "snapshots_unversioned", summary)
    exit_if_missed(args, summary["targets_met"])
    if not summary["checks"]["restored_equal"]:
        sys.exit(1)  # whatever the load: a restore gives back what was saved


if __name__ == "__main__":
    main()
