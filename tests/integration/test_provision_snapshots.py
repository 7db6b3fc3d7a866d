"""Snapshots of the whole environment on the real servers: save, damage every service, restore,
and every database's schema and rows, every object's bytes and the realm's export are equal to
before (a user's old password works again) while the API kept answering; a snapshot newer
than the checkout's migrations refused before any write, an older one migrated forward; a
restore whose worker is killed with SIGKILL half-way; export, import and a corrupt file."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError, FailureError
from temporalio.worker import Worker

from conceptor.activities.provisioning import provisioning_activities
from conceptor.activities.snapshot.activities import snapshot_activities
from conceptor.activities.snapshot.store import SNAPSHOT_BUCKET, copy_name
from conceptor.client.provisioning import start_provision
from conceptor.contracts import CORE_QUEUE, ProvisionResult
from conceptor.platform.devservices.stack import LocalStack
from conceptor.platform.keycloak_tokens import admin_token
from conceptor.platform.s3 import s3_client
from conceptor.platform.settings import Settings
from conceptor.platform.temporal import connect
from conceptor.snapshot_contracts import (
    SNAPSHOT_RESTORE_WORKFLOW,
    SnapshotRequest,
)
from conceptor.workflows.drift import DRIFT_WORKFLOWS
from conceptor.workflows.provision import PROVISIONING_WORKFLOWS
from conceptor.workflows.snapshot import SNAPSHOT_WORKFLOW_CLASSES
from tests.helpers import assert_eventually
from tests.integration.provision_support import (
    ARTIFACTS,
    ProvisionEnv,
    admin_cli_login,
    diff_paths,
    isolated_env,
    kill,
    realm_export,
    spawn_core_worker,
    superuser,
)

pytestmark = pytest.mark.integration


def declared_migrations(tmp_path: Path) -> Path:
    """A copy of the environment file's first database's migrations (a test adds to it)."""
    from conceptor.platform import environment

    file = environment.default_file()
    folders = environment.load(file).databases[0].migration_folders
    target = tmp_path / "migrations"
    target.mkdir()
    for folder in folders:
        for sql in (file.resolve().parent / folder).glob("*.sql"):
            shutil.copy(sql, target / sql.name)
    return target


@pytest.fixture
async def env(local_stack: LocalStack, tmp_path: Path) -> AsyncIterator[ProvisionEnv]:
    migrations = declared_migrations(tmp_path)
    async with isolated_env(
        local_stack.settings, tmp_path / "env", migrations_dir=migrations
    ) as environment:
        yield environment
        await _drop_copies(environment.settings)


@pytest.fixture
async def watched_env(local_stack: LocalStack, tmp_path: Path) -> AsyncIterator[ProvisionEnv]:
    """As `env`, with a drift watch that provisioning registers (an hour apart: it never runs
    during the test)."""
    migrations = declared_migrations(tmp_path)
    async with isolated_env(
        local_stack.settings,
        tmp_path / "env",
        migrations_dir=migrations,
        drift_interval_seconds=3600.0,
    ) as environment:
        yield environment
        await _drop_copies(environment.settings)


def worker(client: Client, env: ProvisionEnv) -> Worker:
    """A core worker of this environment: provisioning and snapshots."""
    return Worker(
        client,
        task_queue=env.queue,
        workflows=[*PROVISIONING_WORKFLOWS, *DRIFT_WORKFLOWS, *SNAPSHOT_WORKFLOW_CLASSES],
        activities=[*provisioning_activities(env.settings), *snapshot_activities(env.settings)],
    )


async def _provision(client: Client, env: ProvisionEnv) -> ProvisionResult:
    handle = await start_provision(
        client, workflow_id=f"provision-{uuid.uuid4()}", task_queue=env.queue
    )
    result: ProvisionResult = await handle.result()
    return result


async def _run(client: Client, env: ProvisionEnv, workflow: str, name: str) -> Any:
    """A snapshot workflow on this environment's queue (the CLI's are on `core`)."""
    from conceptor.snapshot_contracts import RestoreResult, SnapshotManifest

    result_type = {SNAPSHOT_RESTORE_WORKFLOW: RestoreResult}.get(workflow, SnapshotManifest)
    return await client.execute_workflow(
        workflow,
        SnapshotRequest(name=name),
        id=f"{workflow}-{uuid.uuid4()}",
        task_queue=env.queue,
        result_type=result_type,
    )


async def _drop_copies(settings: Settings) -> None:
    """The test's snapshot copies (their comment names them) and their spares."""
    conn = await superuser(settings)
    try:
        rows = await conn.fetch(
            "SELECT datname FROM pg_database WHERE shobj_description(oid, 'pg_database') "
            "LIKE 'conceptor snapshot test-%'"
        )
        for row in rows:
            for name in (row["datname"] + "_spare", row["datname"]):
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


# ----- the state of each service, for equality before and after ---------------------------


async def db_state(env: ProvisionEnv) -> dict[str, Any]:
    """Every table's columns and rows, and the migrations recorded."""
    conn = await asyncpg.connect(env.settings.postgres_dsn)
    try:
        tables = [
            r["table_name"]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' ORDER BY 1"
            )
        ]
        state: dict[str, Any] = {}
        for table in tables:
            columns = await conn.fetch(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
                table,
            )
            rows = await conn.fetch(f'SELECT * FROM "{table}" ORDER BY 1')
            state[table] = {
                "columns": [tuple(c) for c in columns],
                "rows": [json.dumps(dict(r), default=str, sort_keys=True) for r in rows],
            }
        return state
    finally:
        await conn.close()


async def objects_state(env: ProvisionEnv) -> dict[str, dict[str, bytes]]:
    out: dict[str, dict[str, bytes]] = {}
    async with s3_client(env.settings) as s3:
        for bucket in env.buckets:
            listed = await s3.list_objects_v2(Bucket=bucket)
            out[bucket] = {}
            for obj in listed.get("Contents", []):
                body = await s3.get_object(Bucket=bucket, Key=obj["Key"])
                out[bucket][obj["Key"]] = await body["Body"].read()
    return out


async def _admin(env: ProvisionEnv, http: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    s = env.settings
    token = await admin_token(s, http)
    return f"{s.keycloak_url}/admin/realms/{env.realm}", {"Authorization": f"Bearer {token}"}


async def add_user(env: ProvisionEnv, username: str, password: str) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        base, headers = await _admin(env, http)
        resp = await http.post(
            f"{base}/users",
            headers=headers,
            json={
                "username": username,
                "enabled": True,
                "email": f"{username}@example.com",
                "firstName": username.title(),
                "lastName": "Tester",
                "credentials": [{"type": "password", "value": password, "temporary": False}],
            },
        )
        assert resp.status_code == 201, resp.text


async def user_id(env: ProvisionEnv, http: httpx.AsyncClient, username: str) -> str:
    base, headers = await _admin(env, http)
    found = (
        await http.get(
            f"{base}/users", params={"username": username, "exact": "true"}, headers=headers
        )
    ).json()
    return str(found[0]["id"])


async def logs_in(env: ProvisionEnv, username: str, password: str) -> bool:
    """The password grant of admin-cli (a public client every realm has) succeeds."""
    return (await admin_cli_login(env, username, password)).status_code == 200


async def damage(env: ProvisionEnv) -> None:
    """Drop a table, delete objects, delete a realm user and change another's password."""
    conn = await asyncpg.connect(env.settings.postgres_dsn)
    try:
        await conn.execute("DROP TABLE notes")
        await conn.execute("INSERT INTO schema_migrations VALUES ('9999_hand.sql', 'x', now(), 0)")
    finally:
        await conn.close()
    async with s3_client(env.settings) as s3:
        await s3.delete_object(Bucket=env.private_bucket, Key="docs/a.bin")
        await s3.put_object(Bucket=env.private_bucket, Key="docs/b.bin", Body=b"overwritten")
        await s3.put_object(Bucket=env.public_bucket, Key="new.txt", Body=b"added by hand")
    async with httpx.AsyncClient(timeout=30) as http:
        base, headers = await _admin(env, http)
        dave = await user_id(env, http, "dave")
        assert (await http.delete(f"{base}/users/{dave}", headers=headers)).status_code == 204
        carol = await user_id(env, http, "carol")
        resp = await http.put(
            f"{base}/users/{carol}/reset-password",
            headers=headers,
            json={"type": "password", "value": "changed-pw", "temporary": False},
        )
        assert resp.status_code == 204


async def fill(env: ProvisionEnv, rows: int = 200, objects: int = 20) -> None:
    """A developer's data: a table of rows, objects in both buckets, two realm users."""
    conn = await asyncpg.connect(env.settings.postgres_dsn)
    try:
        await conn.execute("CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)")
        await conn.executemany(
            "INSERT INTO notes (body) VALUES ($1)", [(f"note {i} — ünïcode",) for i in range(rows)]
        )
    finally:
        await conn.close()
    async with s3_client(env.settings) as s3:
        await s3.put_object(Bucket=env.private_bucket, Key="docs/a.bin", Body=os.urandom(70_000))
        await s3.put_object(Bucket=env.private_bucket, Key="docs/b.bin", Body=os.urandom(1_000))
        for i in range(objects):
            await s3.put_object(
                Bucket=env.public_bucket, Key=f"img/{i}.png", Body=os.urandom(5_000)
            )
    await add_user(env, "carol", "carol-pw")
    await add_user(env, "dave", "dave-pw")


# Defaults that Keycloak's own import writes out where the admin API left them implicit (a
# realm first made by the admin API, then restored by import): same meaning, one more key.
IMPORT_DEFAULTS = {
    "clientOfflineSessionIdleTimeout": "0",
    "clientOfflineSessionMaxLifespan": "0",
    "clientSessionIdleTimeout": "0",
    "clientSessionMaxLifespan": "0",
    "userinfo.token.claim": "true",
    "post.logout.redirect.uris": "+",
}


def without_import_defaults(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: without_import_defaults(v)
            for k, v in node.items()
            if not (k in IMPORT_DEFAULTS and v == IMPORT_DEFAULTS[k])
        }
    if isinstance(node, list):
        return [without_import_defaults(v) for v in node]
    return node


async def everything(env: ProvisionEnv) -> dict[str, Any]:
    return {
        "postgres": await db_state(env),
        "minio": await objects_state(env),
        "keycloak": without_import_defaults(await realm_export(env)),
    }


# ----- an API process on this environment, polled during a restore -------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ApiPoller:
    """`conceptor api serve` on this environment, asked `/api/ready` every 50 ms."""

    def __init__(self, stack_env: dict[str, str], env: ProvisionEnv, log: Path) -> None:
        self.port = _free_port()
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "conceptor", "api", "serve", "--port", str(self.port)],
            env={**os.environ, **stack_env, **env.environ()},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.answers: list[int] = []
        self.errors: list[str] = []
        self._stop = asyncio.Event()

    async def ready(self) -> None:
        async def up() -> None:
            try:
                async with httpx.AsyncClient(timeout=2) as http:
                    resp = await http.get(f"http://127.0.0.1:{self.port}/api/ready")
            except httpx.HTTPError as exc:
                raise AssertionError(repr(exc)) from None
            assert resp.status_code == 200, resp.text

        await assert_eventually(up, timeout=60, message="the API did not become ready")

    async def poll(self) -> None:
        async with httpx.AsyncClient(timeout=5) as http:
            while not self._stop.is_set():
                try:
                    resp = await http.get(f"http://127.0.0.1:{self.port}/api/ready")
                    self.answers.append(resp.status_code)
                except httpx.HTTPError as exc:
                    self.answers.append(0)
                    self.errors.append(type(exc).__name__)
                await asyncio.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        kill(self.proc, signal.SIGTERM)
        self._log.close()


# ----- the tests ---------------------------------------------------------------------------


async def test_save_damage_restore_gives_back_every_service_while_the_api_answers(
    env: ProvisionEnv, stack_env: dict[str, str]
) -> None:
    client = await connect(env.settings)
    name = f"test-{uuid.uuid4().hex[:8]}"
    async with worker(client, env):
        assert (await _provision(client, env)).steps
        await fill(env)
        before = await everything(env)
        manifest = await _run(client, env, "SnapshotSaveWorkflow", name)
        assert [d.live for d in manifest.databases] == [env.database]
        assert sorted(b.bucket for b in manifest.buckets) == sorted(env.buckets)
        assert {b.bucket: b.objects for b in manifest.buckets} == {
            env.private_bucket: 2,
            env.public_bucket: 20,
        }
        assert [r.realm for r in manifest.realms] == [env.realm]
        assert manifest.git_commit and len(manifest.git_commit) == 40
        assert "environment.yaml" in manifest.environment_digests
        # Saving took nothing away: the live state is as it was.
        assert await everything(env) == before

        await damage(env)
        damaged = await everything(env)
        assert damaged != before
        assert not await logs_in(env, "carol", "carol-pw")
        assert not await logs_in(env, "dave", "dave-pw")

        api = ApiPoller(stack_env, env, ARTIFACTS / "snapshots" / f"api-{name}.log")
        try:
            await api.ready()
            polling = asyncio.create_task(api.poll())
            await asyncio.sleep(0.5)
            result = await _run(client, env, SNAPSHOT_RESTORE_WORKFLOW, name)
            await asyncio.sleep(0.5)
            api._stop.set()
            await polling
        finally:
            api.stop()
        after = await everything(env)

    assert after["postgres"] == before["postgres"]
    assert after["minio"] == before["minio"]
    differ = diff_paths(before["keycloak"], after["keycloak"])
    assert differ == [], "\n".join(differ)
    assert await logs_in(env, "carol", "carol-pw")
    assert await logs_in(env, "dave", "dave-pw")
    assert not await logs_in(env, "carol", "changed-pw")
    assert sorted(p.part for p in result.restored) == sorted(
        [
            f"postgres:{_declared_db()}",
            *(f"minio:{b}" for b in env.buckets),
            f"keycloak:{env.realm}",
        ]
    )
    assert result.migrations_applied == {}
    failed = [a for a in api.answers if a != 200]
    report = {
        "requests": len(api.answers),
        "failed": len(failed),
        "answers": "".join("." if a == 200 else "x" for a in api.answers),
        "errors": sorted(set(api.errors)),
    }
    (ARTIFACTS / "snapshots").mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "snapshots" / "api-during-restore.json").write_text(json.dumps(report))
    print(f"API during the restore: {report}")
    assert len(api.answers) >= 10, report
    assert len(failed) <= 5, report
    assert api.answers[-1] == 200, report


async def _activity_results(client: Client, *, result_of: str, kind: str) -> list[Any]:
    """The results of activity `kind` in the latest restore on queue `result_of`, in order."""
    query = f'WorkflowType="{SNAPSHOT_RESTORE_WORKFLOW}" AND TaskQueue="{result_of}"'
    latest = None
    async for run in client.list_workflows(query):
        if latest is None or run.start_time > latest.start_time:
            latest = run
    assert latest is not None, "no restore ran"
    scheduled: dict[int, str] = {}
    results: list[Any] = []
    handle = client.get_workflow_handle(latest.id, run_id=latest.run_id)
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            scheduled[event.event_id] = attrs.activity_type.name
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            attrs_done = event.activity_task_completed_event_attributes
            if scheduled.get(attrs_done.scheduled_event_id) == kind:
                payload = attrs_done.result.payloads[0]
                results.append(json.loads(payload.data))
    return results


def _which(state: Any, new: Any, old: Any) -> str:
    return "new" if state == new else "old" if state == old else "between"


def root_cause(error: WorkflowFailureError) -> ApplicationError:
    """The application failure under the workflow's and activity's wrappers."""
    cause: BaseException | None = error.cause
    while isinstance(cause, FailureError) and not isinstance(cause, ApplicationError):
        cause = cause.cause
    assert isinstance(cause, ApplicationError), repr(error.cause)
    while isinstance(cause.cause, ApplicationError):
        cause = cause.cause
    return cause


def _declared_db() -> str:
    """The name the environment file gives the first database (the settings' one)."""
    from conceptor.platform import environment

    return environment.load(environment.default_file()).databases[0].name


async def test_newer_snapshot_refused_before_any_write_older_migrated_forward(
    watched_env: ProvisionEnv,
) -> None:
    env = watched_env
    client = await connect(env.settings)
    older, newer = f"test-{uuid.uuid4().hex[:8]}", f"test-{uuid.uuid4().hex[:8]}"
    assert env.settings.migrations_dir is not None  # the isolated copy's own folder
    extra = env.settings.migrations_dir / "9000_snapshot_test.sql"
    async with worker(client, env):
        assert (await _provision(client, env)).steps
        await _run(client, env, "SnapshotSaveWorkflow", older)
        extra.write_text("CREATE TABLE added_later (id int PRIMARY KEY);")
        assert (await _provision(client, env)).steps
        await _run(client, env, "SnapshotSaveWorkflow", newer)

        # The drift watch provisioning registered is paused while a restore runs.
        schedule = client.get_schedule_handle(env.settings.drift_watch_schedule_id)
        assert not (await schedule.describe()).schedule.state.paused

        # The older snapshot: restored, then the migration it predates applied and named.
        result = await _run(client, env, SNAPSHOT_RESTORE_WORKFLOW, older)
        assert result.migrations_applied == {_declared_db(): ["9000_snapshot_test.sql"]}
        state = await db_state(env)
        assert "added_later" in state
        assert result.drift_watch_paused
        assert not (await schedule.describe()).schedule.state.paused
        notes = await _activity_results(client, result_of=env.queue, kind="drift_watch_pause")
        assert notes[-2:] == [True, True]  # paused, then resumed, by this restore

        # A drift watch a person paused stays paused.
        await schedule.pause(note="paused by hand")
        again = await _run(client, env, SNAPSHOT_RESTORE_WORKFLOW, older)
        assert not again.drift_watch_paused
        assert (await schedule.describe()).schedule.state.paused

        # The checkout loses that migration: the newer snapshot is refused, naming it.
        extra.unlink()
        conn = await asyncpg.connect(env.settings.postgres_dsn)
        try:
            await conn.execute("INSERT INTO added_later VALUES (42)")
        finally:
            await conn.close()
        before = await db_state(env)
        with pytest.raises(WorkflowFailureError) as failure:
            await _run(client, env, SNAPSHOT_RESTORE_WORKFLOW, newer)
        cause = root_cause(failure.value)
        message = str(cause)
        assert "9000_snapshot_test.sql" in message, message
        assert "migrations this checkout does not have" in message, message
        assert cause.type == "SnapshotNewerSchema"
        assert await db_state(env) == before  # nothing written


async def test_restore_killed_half_way_leaves_each_service_old_or_new(
    env: ProvisionEnv, stack_env: dict[str, str], tmp_path: Path
) -> None:
    """SIGKILL of the only worker while a restore runs. PostgreSQL's swap and Keycloak's
    import are single transactions: each is fully old or fully new at once. MinIO has no
    transaction: the next worker finishes the restore, and every service ends fully new."""
    client = await connect(env.settings)
    name = f"test-{uuid.uuid4().hex[:8]}"
    async with worker(client, env):
        assert (await _provision(client, env)).steps
        await fill(env, rows=50_000, objects=300)
        before = await everything(env)
        await _run(client, env, "SnapshotSaveWorkflow", name)
        await damage(env)
        damaged = await everything(env)

    logs = tmp_path / "workers"
    first = spawn_core_worker(stack_env, env, 0, logs)
    handle = await client.start_workflow(
        SNAPSHOT_RESTORE_WORKFLOW,
        SnapshotRequest(name=name),
        id=f"restore-{uuid.uuid4()}",
        task_queue=CORE_QUEUE,  # where `conceptor worker core` polls
    )

    async def restoring() -> None:
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                kind = event.activity_task_scheduled_event_attributes.activity_type.name
                if kind == "snapshot_restore_bucket":
                    return
        raise AssertionError("no snapshot_restore_bucket scheduled yet")

    try:
        await assert_eventually(restoring, timeout=60, interval=0.05, message="no restore began")
        await asyncio.sleep(0.3)
    finally:
        kill(first)  # SIGKILL: no cleanup of any kind
    killed_at = time.monotonic()
    now = await everything(env)
    assert now["postgres"] in (before["postgres"], damaged["postgres"])
    assert now["keycloak"] in (before["keycloak"], damaged["keycloak"])
    print(
        "at the kill:",
        {
            service: _which(now[service], before[service], damaged[service])
            for service in ("postgres", "keycloak", "minio")
        },
    )

    second = spawn_core_worker(stack_env, env, 1, logs)
    try:
        await asyncio.wait_for(handle.result(), timeout=180)
    finally:
        kill(second, signal.SIGTERM)
    print(f"restore finished {time.monotonic() - killed_at:.1f} s after the kill")
    assert await everything(env) == before


async def test_restore_without_a_spare_copies_then_the_spare_is_made_again(
    env: ProvisionEnv,
) -> None:
    """A snapshot whose spare is gone (saved before spares, or its making failed) is restored
    by a copy; once the restore has ended the old database is dropped and the spare made
    again, which the next restore renames in; a delete drops the copy and the spare."""
    client = await connect(env.settings)
    name = f"test-{uuid.uuid4().hex[:8]}"
    copy = copy_name(name, _declared_db())
    spare, replaced = copy + "_spare", env.database + "__replaced"

    async def spare_ready() -> None:
        names = await _databases(env.settings)
        assert spare in names and replaced not in names, names

    async def restored_by() -> str:
        result = await _run(client, env, SNAPSHOT_RESTORE_WORKFLOW, name)
        [detail] = [p.detail for p in result.restored if p.part.startswith("postgres:")]
        return str(detail)

    async with worker(client, env):
        assert (await _provision(client, env)).steps
        await fill(env)
        before = await everything(env)
        await _run(client, env, "SnapshotSaveWorkflow", name)
        await assert_eventually(spare_ready, timeout=60, message="no spare after the save")
        conn = await superuser(env.settings)
        try:
            await conn.execute(f'DROP DATABASE "{spare}"')
        finally:
            await conn.close()

        await damage(env)
        assert "copied (no spare was ready)" in await restored_by()
        assert await everything(env) == before
        await assert_eventually(spare_ready, timeout=60, message="no spare after the restore")

        await damage(env)
        assert "its spare renamed in" in await restored_by()
        assert await everything(env) == before
        await assert_eventually(spare_ready, timeout=60, message="no spare after the restore")

        await client.execute_workflow(
            "SnapshotDeleteWorkflow",
            SnapshotRequest(name=name),
            id=f"delete-{uuid.uuid4()}",
            task_queue=env.queue,
            result_type=int,
        )
    names = await _databases(env.settings)
    assert copy not in names and spare not in names and replaced not in names, names


TEAMMATE_PREFIX = "456"  # no test group's block: a second machine's stack


@pytest.fixture(scope="module")
def teammate() -> Iterator[Settings]:
    """A teammate's machine: its own PostgreSQL, MinIO, Keycloak and Temporal on another port
    prefix and data directory, nothing provisioned."""
    # Not under pytest's tmp: the postgres server's user must reach its data directory.
    localdev = Path(tempfile.mkdtemp(prefix="conceptor-teammate-"))
    localdev.chmod(0o755)  # the postgres server runs as `postgres` and must reach its data dir
    settings = Settings(port_prefix=TEAMMATE_PREFIX, localdev_dir=localdev, environment="test")
    env = {
        "TILT_PORT_PREFIX": TEAMMATE_PREFIX,
        "CENTRAL_LOCALDEV_DIR": str(localdev),
        "CENTRAL_ENVIRONMENT": "test",
        "CENTRAL_LOG_FORMAT": "json",
    }
    stack = LocalStack(
        settings,
        env=env,
        log_dir=ARTIFACTS / "snapshots" / "teammate",
        services=("postgres", "minio", "keycloak", "temporal"),
    )
    try:
        stack.start(timeout=600)
        yield settings
    finally:
        stack.stop()
        shutil.rmtree(localdev, ignore_errors=True)


async def test_export_then_import_on_another_prefix_and_data_dir(
    env: ProvisionEnv, teammate: Settings, tmp_path: Path
) -> None:
    """The file carries everything to another stack; an import checks it whole first and
    refuses a corrupt file before it writes anything."""
    client = await connect(env.settings)
    name = f"test-{uuid.uuid4().hex[:8]}"
    file = tmp_path / "team.snapshot"
    async with worker(client, env):
        assert (await _provision(client, env)).steps
        await fill(env)
        before = await everything(env)
        await _run(client, env, "SnapshotSaveWorkflow", name)
        exported = await _export(client, env, name, file)
        assert exported.bytes == file.stat().st_size

    # The teammate's stack: the same declared objects, under its own database name.
    other = ProvisionEnv(
        settings=teammate.model_copy(update={"buckets": env.settings.buckets}),
        database=teammate.postgres_db,
        realm=env.realm,
        buckets=env.buckets,
    )
    theirs = await connect(teammate)
    imported_name = f"test-{uuid.uuid4().hex[:8]}"
    async with worker(theirs, other):
        bad = tmp_path / "bad.snapshot"
        data = bytearray(file.read_bytes())
        data[len(data) // 2] ^= 0xFF
        bad.write_bytes(bytes(data))
        with pytest.raises(WorkflowFailureError) as failure:
            await _import(theirs, other, bad, imported_name)
        cause = root_cause(failure.value)
        assert cause.type == "SnapshotCorrupt", cause
        assert "fails its checksum" in str(cause) or "not a snapshot file" in str(cause), cause
        assert not (teammate.localdev_dir / "snapshots" / imported_name).exists()
        assert copy_name(imported_name, _declared_db()) not in await _databases(teammate)

        imported = await _import(theirs, other, file, imported_name)
        assert imported.sha256 == exported.sha256
        result = await _run(theirs, other, SNAPSHOT_RESTORE_WORKFLOW, imported_name)
        assert len(result.restored) == 1 + len(env.buckets) + 1
    assert await everything(other) == before
    assert await logs_in(other, "carol", "carol-pw")
    async with s3_client(teammate) as s3:
        listed = await s3.list_objects_v2(Bucket=SNAPSHOT_BUCKET, Prefix=f"{imported_name}/")
        assert listed.get("KeyCount", 0) == 22 + 1  # the objects and the manifest


async def _file_workflow(
    workflow: str, client: Client, env: ProvisionEnv, name: str, file: Path
) -> Any:
    """Export (`SnapshotExportWorkflow`) or import (`SnapshotImportWorkflow`) on this env."""
    from conceptor.snapshot_contracts import ExportResult, SnapshotFileRequest

    return await client.execute_workflow(
        workflow,
        SnapshotFileRequest(name=name, file=str(file)),
        id=f"{workflow}-{uuid.uuid4()}",
        task_queue=env.queue,
        result_type=ExportResult,
    )


async def _export(client: Client, env: ProvisionEnv, name: str, file: Path) -> Any:
    return await _file_workflow("SnapshotExportWorkflow", client, env, name, file)


async def _import(client: Client, env: ProvisionEnv, file: Path, name: str) -> Any:
    return await _file_workflow("SnapshotImportWorkflow", client, env, name, file)


async def _databases(settings: Settings) -> list[str]:
    conn = await superuser(settings)
    try:
        return [r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")]
    finally:
        await conn.close()


def test_the_cli_names_what_a_name_may_be() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "conceptor", "snapshot", "save", "Bad Name"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2
    assert "snapshot name 'Bad Name' is not valid" in out.stderr
