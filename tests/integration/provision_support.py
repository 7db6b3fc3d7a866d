"""Provisioning test support: an isolated environment (own database, buckets, realm) per test,
in-process or subprocess core workers, snapshots of everything provisioning touches."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from botocore.exceptions import ClientError
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker

from conceptor.activities.provisioning import provisioning_activities
from conceptor.platform.devservices.stack import LocalStack
from conceptor.platform.keycloak_tokens import admin_token
from conceptor.platform.s3 import s3_client
from conceptor.platform.settings import REPO_ROOT, Settings
from conceptor.platform.temporal import connect
from conceptor.workflows.drift import DRIFT_WORKFLOWS
from conceptor.workflows.provision import PROVISIONING_WORKFLOWS
from tests.helpers import wait_until

MIGRATIONS = REPO_ROOT / "services" / "central" / "migrations"
ARTIFACTS = REPO_ROOT / "tests" / "artifacts"


@dataclass
class ProvisionEnv:
    """Settings of one isolated environment on the shared test stack, and its names."""

    settings: Settings
    database: str
    realm: str
    buckets: dict[str, str]
    queue: str = field(default_factory=lambda: f"provision-{uuid.uuid4()}")

    @property
    def private_bucket(self) -> str:
        return next(b for b, p in self.buckets.items() if p == "private")

    @property
    def public_bucket(self) -> str:
        return next(b for b, p in self.buckets.items() if p == "public-read")

    def environ(self) -> dict[str, str]:
        """The same settings as environment variables, for worker subprocesses."""
        s = self.settings
        return {
            "CENTRAL_POSTGRES_DSN": s.postgres_dsn,
            "CENTRAL_BUCKETS": json.dumps(s.buckets),
            "CENTRAL_BUCKETS_FILE": str(s.buckets_file),
            "CENTRAL_REALM_NAME": s.realm_name,
            "CENTRAL_REALM_FILE": str(s.realm_file),
            "CENTRAL_MIGRATIONS_DIR": str(s.migrations_dir),
            "CENTRAL_PROVISION_STEP_DEADLINE_SECONDS": str(s.provision_step_deadline_seconds),
            "CENTRAL_DRIFT_INTERVAL_SECONDS": str(s.drift_interval_seconds),
            "CENTRAL_DRIFT_REPAIR": str(s.drift_repair).lower(),
            "CENTRAL_DRIFT_WATCH_SCHEDULE_ID": s.drift_watch_schedule_id,
        }


def migration_names(directory: Path = MIGRATIONS) -> list[str]:
    return sorted(p.name for p in directory.glob("*.sql"))


async def superuser(settings: Settings, database: str = "postgres") -> asyncpg.Connection:
    """A connection as PostgreSQL's superuser (what creates and drops databases and roles)."""
    return await asyncpg.connect(
        host=settings.host,
        port=settings.port("postgres"),
        user="postgres",
        password=settings.postgres_superuser_password.get_secret_value(),
        database=database,
    )


@asynccontextmanager
async def isolated_env(
    base: Settings, tmp_path: Path, *, deadline: float = 60.0, **overrides: Any
) -> AsyncIterator[ProvisionEnv]:
    """A fresh database, two fresh buckets and a fresh realm (copy of the shipped file)."""
    tag = uuid.uuid4().hex[:10]
    database, realm = f"prov_{tag}", f"technova-{tag}"
    conn = await superuser(base)
    try:
        await conn.execute(f'CREATE DATABASE "{database}" OWNER "{base.postgres_user}"')
    finally:
        await conn.close()
    tmp_path.mkdir(parents=True, exist_ok=True)
    realm_file = tmp_path / "technova.json"
    text = (REPO_ROOT / "_dev-env" / "realms" / "technova.json").read_text()
    realm_file.write_text(text.replace('"realm": "technova"', f'"realm": "{realm}"', 1))
    buckets = {f"media-{tag}": "private", f"thumbs-{tag}": "public-read"}
    # No file declarations: the shipped file names the shared `media` and `thumbnails`.
    buckets_file = tmp_path / "buckets.json"
    buckets_file.write_text('{"buckets": {}}')
    dsn = base.postgres_dsn.rsplit("/", 1)[0] + f"/{database}"
    settings = base.model_copy(
        update={
            "postgres_dsn_override": SecretStr(dsn),
            "buckets": buckets,
            "buckets_file": buckets_file,
            "realm_name": realm,
            "realm_file": realm_file,
            "migrations_dir": MIGRATIONS,
            "provision_step_deadline_seconds": deadline,
            # Each environment its own drift watch, off unless a test turns it on.
            "drift_interval_seconds": 0.0,
            "drift_watch_schedule_id": f"drift-watch-{tag}",
            **overrides,
        }
    )
    env = ProvisionEnv(settings=settings, database=database, realm=realm, buckets=buckets)
    try:
        yield env
    finally:
        await _delete_schedule(base, settings.drift_watch_schedule_id)
        await _terminate_open_runs(base, env.queue)
        await _cleanup(base, env)


async def _delete_schedule(base: Settings, schedule_id: str) -> None:
    client = await connect(base)
    with suppress(RPCError):  # never created (the watch is off unless a test turns it on)
        await client.get_schedule_handle(schedule_id).delete()


async def _terminate_open_runs(base: Settings, queue: str) -> None:
    """A failed test must not leave runs behind that a later test's worker would pick up."""
    client = await connect(base)
    query = f'TaskQueue="{queue}" AND ExecutionStatus="Running"'
    async for run in client.list_workflows(query):
        await client.get_workflow_handle(run.id, run_id=run.run_id).terminate("test ended")


async def _cleanup(base: Settings, env: ProvisionEnv) -> None:
    try:
        conn = await superuser(base)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{env.database}" WITH (FORCE)')
        finally:
            await conn.close()
    except OSError:
        pass  # Postgres stopped by a fault test that failed: the stack teardown removes it
    async with httpx.AsyncClient(timeout=30) as http:
        token = await admin_token(base, http)
        await http.delete(
            f"{base.keycloak_url}/admin/realms/{env.realm}",
            headers={"Authorization": f"Bearer {token}"},
        )
    async with s3_client(base) as s3:
        for bucket in env.buckets:
            try:
                listed = await s3.list_objects_v2(Bucket=bucket)
                for obj in listed.get("Contents", []):
                    await s3.delete_object(Bucket=bucket, Key=obj["Key"])
                await s3.delete_bucket(Bucket=bucket)
            except ClientError:
                pass


def in_process_worker(client: Client, env: ProvisionEnv) -> Worker:
    return Worker(
        client,
        task_queue=env.queue,
        workflows=[*PROVISIONING_WORKFLOWS, *DRIFT_WORKFLOWS],
        activities=provisioning_activities(env.settings),
    )


# ----- subprocess workers ----------------------------------------------------------------


def spawn_core_worker(
    stack_env: dict[str, str], env: ProvisionEnv, index: int, log_dir: Path
) -> subprocess.Popen[bytes]:
    """`conceptor worker core --index N` with this environment's settings."""
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"worker-core-{index}.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "conceptor", "worker", "core", "--index", str(index)],
            env={**os.environ, **stack_env, **env.environ()},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=30)


@contextmanager
def core_workers(
    stack_env: dict[str, str], env: ProvisionEnv, log_dir: Path
) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        yield procs
    finally:
        for proc in procs:
            kill(proc, signal.SIGTERM)


# ----- stopping a service of the shared stack --------------------------------------------


def _listener_pid(port: int) -> int | None:
    out = subprocess.run(
        ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=False
    ).stdout
    match = re.search(r"pid=(\d+)", out)
    return int(match.group(1)) if match else None


def _launcher_of(pid: int | None, name: str) -> int | None:
    """The `conceptor dev serve <name>` process above the server process `pid`."""
    while pid and pid > 1:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"serve" in cmdline and name.encode() in cmdline:
            return pid
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return None


def stop_service(stack: LocalStack, name: str) -> None:
    """Stop one service, also when the fixture reuses services it did not start."""
    if name in stack.procs:
        stack.stop_service(name)
    else:
        pid = _launcher_of(_listener_pid(stack.settings.port(name)), name)
        assert pid is not None, f"no `conceptor dev serve {name}` found"
        os.kill(pid, signal.SIGTERM)
    port = stack.settings.port(name)
    wait_until(lambda: _listener_pid(port) is None, timeout=60, message=f"{name} still listens")


# ----- snapshots -------------------------------------------------------------------------


async def database_snapshot(env: ProvisionEnv) -> dict[str, Any]:
    conn = await asyncpg.connect(env.settings.postgres_dsn)
    try:
        columns = await conn.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY 1, 2"
        )
        migrations = await conn.fetch(
            "SELECT filename, checksum, applied_at FROM schema_migrations ORDER BY filename"
        )
    finally:
        await conn.close()
    return {"columns": [tuple(r) for r in columns], "migrations": [tuple(r) for r in migrations]}


async def bucket_policies(env: ProvisionEnv) -> dict[str, str | None]:
    policies: dict[str, str | None] = {}
    async with s3_client(env.settings) as s3:
        for bucket in env.buckets:
            try:
                policies[bucket] = (await s3.get_bucket_policy(Bucket=bucket))["Policy"]
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == "NoSuchBucketPolicy"
                policies[bucket] = None
    return policies


async def realm_export(env: ProvisionEnv) -> dict[str, Any]:
    """Realm settings, roles, groups, clients (partial export) plus users and their links."""
    s = env.settings
    async with httpx.AsyncClient(timeout=30) as http:
        headers = {"Authorization": f"Bearer {await admin_token(s, http)}"}
        base = f"{s.keycloak_url}/admin/realms/{env.realm}"
        export = await http.post(
            f"{base}/partial-export?exportClients=true&exportGroupsAndRoles=true", headers=headers
        )
        export.raise_for_status()
        users = (await http.get(f"{base}/users?briefRepresentation=false", headers=headers)).json()
        for user in users:
            user.pop("access", None)
            roles = await http.get(
                f"{base}/users/{user['id']}/role-mappings/realm", headers=headers
            )
            groups = await http.get(f"{base}/users/{user['id']}/groups", headers=headers)
            user["realmRoles"] = sorted(r["name"] for r in roles.json())
            user["groups"] = sorted(g["path"] for g in groups.json())
    snapshot = {"realm": export.json(), "users": sorted(users, key=lambda u: u["username"])}
    return _sort_string_lists(snapshot)  # type: ignore[no-any-return]


def _sort_string_lists(node: Any) -> Any:
    """Keycloak returns set-valued fields (client scopes, URIs) in no fixed order."""
    if isinstance(node, dict):
        return {k: _sort_string_lists(v) for k, v in node.items()}
    if isinstance(node, list):
        items = [_sort_string_lists(v) for v in node]
        return sorted(items) if all(isinstance(v, str) for v in items) else items
    return node


async def admin_cli_login(env: ProvisionEnv, username: str, password: str) -> httpx.Response:
    """The password grant of admin-cli (a public client every realm has), as Keycloak answers."""
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(
            f"{env.settings.keycloak_url}/realms/{env.realm}/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": username,
                "password": password,
            },
        )


async def password_token(env: ProvisionEnv, username: str, password: str) -> dict[str, Any]:
    """Claims of an access token from the password grant of the confidential API client."""
    s = env.settings
    async with httpx.AsyncClient(timeout=30) as http:
        resp = await http.post(
            f"{s.keycloak_url}/realms/{env.realm}/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": s.api_client_id,
                "client_secret": s.api_client_secret.get_secret_value(),
                "username": username,
                "password": password,
                "scope": "openid",
            },
        )
    assert resp.status_code == 200, resp.text
    payload = resp.json()["access_token"].split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


def decoded_history_text(history_json: str) -> str:
    """The history as JSON plus every payload decoded (payload data is base64 in the JSON)."""
    parts = [history_json]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "data" and isinstance(value, str):
                    with suppress(ValueError):
                        parts.append(base64.b64decode(value).decode("utf-8", "replace"))
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json.loads(history_json))
    return "\n".join(parts)


def copy_migrations(tmp_path: Path) -> Path:
    target = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, target)
    return target


def diff_paths(a: Any, b: Any, path: str = "") -> list[str]:
    """Paths where two JSON-like values differ (for readable assertion failures)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            p
            for k in sorted(set(a) | set(b))
            for p in diff_paths(a.get(k), b.get(k), f"{path}.{k}")
        ]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            p
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for p in diff_paths(x, y, f"{path}[{i}]")
        ]
    return [] if a == b else [f"{path}: {a!r} -> {b!r}"[:300]]
