"""A team adds to its stack through the environment file alone, on the real Tilt.

A copy of the repository gets a database with its migration, a second realm, a bucket with a
private policy and an expiry rule, a queue `billing` with one worker, and a custom step: only
`_dev-env/environment.yaml` changes, every other file is new and outside `conceptor/`. `tilt
up` in the copy brings it all up; each object is checked live, a second run writes nothing,
damage to each kind is named by the plan, the billing worker runs its workflow, and the
copy's `git status` names no platform file. README "Add to your stack" is this test's recipes.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from botocore.exceptions import ClientError
from temporalio.client import Client

from conceptor.activities.bucket_policy import policy_document
from conceptor.client.plan import make_plan
from conceptor.client.provisioning import start_provision
from conceptor.platform.keycloak_tokens import admin_token
from conceptor.platform.queues import queue_worker_port
from conceptor.platform.s3 import s3_client
from conceptor.platform.settings import REPO_ROOT, Settings
from conceptor.platform.temporal import connect
from conceptor.workers.runtime import worker_identity
from tests.e2e.tilt_helpers import (
    ARTIFACTS,
    free_port,
    listening_ports,
    stop_tilt_up,
    tilt_binary,
    tilt_env,
    tilt_prefix,
)
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e

PREFIX = tilt_prefix("468")  # its billing worker on the next prefix's block (46900)
# What the scenario needs; Tilt enables these and what they depend on. The file turns off
# the services the scenario does not use (mailpit, front-door, db-tools).
RESOURCES = [
    "localdev-postgres",
    "localdev-redis",
    "localdev-temporal",
    "localdev-keycloak",
    "localdev-minio",
    "worker-core-0",
    "worker-billing-0",
    "provision",
]
TILT_ARGS = ["--", "--media-workers=0", *RESOURCES]

DATABASE, TABLE = "billing", "invoices"
REALM, CLIENT, USER = "partners", "partners-portal", "pat"
BUCKET, RULE = "billing-exports", "expire-exports"
REDIS_KEY = "billing:plans"

# --------------------------------------------------------------------- the team's files
QUEUE_MODULE = '''\
"""Billing's workflow and activity, served by `conceptor worker billing`."""

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn
async def price_invoice(lines: list[int]) -> int:
    """The invoice's total in cents."""
    return sum(lines)


@workflow.defn
class InvoiceWorkflow:
    @workflow.run
    async def run(self, lines: list[int]) -> str:
        total = await workflow.execute_activity(
            price_invoice, lines, start_to_close_timeout=timedelta(seconds=30)
        )
        return f"invoice total {total}"


class BillingQueue:
    def workflows(self):
        return [InvoiceWorkflow]

    def activities(self, settings):
        return [price_invoice]


QUEUE = BillingQueue()
'''

STEPS_MODULE = f'''\
"""Billing's provisioning step: its price plans, kept in Redis (a step that plans)."""

import json

import redis.asyncio as aioredis

from conceptor.activities.custom_steps import diff_objects

KEY = "{REDIS_KEY}"
PLANS = {{"basic": {{"monthly_cents": 900}}, "pro": {{"monthly_cents": 2900}}}}


class Plans:
    def desired(self, ctx):
        return PLANS

    async def live(self, ctx):
        client = aioredis.from_url(ctx.settings.redis_url)
        try:
            raw = await client.hgetall(KEY)
        finally:
            await client.aclose()
        return {{k.decode(): json.loads(v) for k, v in raw.items()}}

    def diff(self, desired, live):
        return diff_objects("plan", desired, live)

    async def apply(self, ctx, changes):
        client = aioredis.from_url(ctx.settings.redis_url)
        try:
            for change in changes:
                if change.action == "delete":
                    await client.hdel(KEY, change.name)
                else:
                    await client.hset(KEY, change.name, json.dumps(PLANS[change.name]))
        finally:
            await client.aclose()


PLANS_STEP = Plans()
'''

MIGRATION = f"CREATE TABLE {TABLE} (id bigserial PRIMARY KEY, total_cents bigint NOT NULL);\n"

REALM_FILE = {
    "realm": REALM,
    "enabled": True,
    "sslRequired": "none",
    "clients": [
        {
            "clientId": CLIENT,
            "enabled": True,
            "publicClient": True,
            "standardFlowEnabled": True,
            "redirectUris": ["${FRONT_DOOR_URL}/partners/*"],
        }
    ],
    "users": [
        {"username": USER, "enabled": True, "email": "pat@partners.test", "emailVerified": True}
    ],
}

# Appended to the copy's environment file: each list gets the team's entry.
ADDITIONS = {
    "databases:": f"""  - name: {DATABASE}
    migrations: ../services/billing/migrations
""",
    "realms:": f"""  - name: {REALM}
    file: ../services/billing/realm/{REALM}.json
""",
    "buckets:": f"""  - name: {BUCKET}
    policy: private
    lifecycle:
      - {{id: {RULE}, prefix: exports/, expire_days: 30}}
""",
    "queues:": """  - name: billing
    workers: 1
    declaration: services.billing.queue:QUEUE
    concurrency: {activities: 4, workflow_tasks: 4}
""",
}
STEPS = """steps:
  - name: billing_plans
    run: services.billing.steps:PLANS_STEP
    after: [wait_for_redis]
"""
SERVICES_OFF = ("mailpit", "front-door", "db-tools")


def _edit_environment(text: str) -> str:
    """The team's edit: one entry under each list, its step, three services off."""
    for key, entry in ADDITIONS.items():
        head, sep, rest = text.partition(f"\n{key}\n")
        assert sep, f"no {key} list in the environment file"
        # The entry goes after the list's last item (the next blank line ends the list).
        items, blank, tail = rest.partition("\n\n")
        text = f"{head}{sep}{items}\n{entry.rstrip()}{blank}{tail}"
    assert "\nsteps: []\n" in text
    text = text.replace("\nsteps: []\n", "\n" + STEPS)
    for service in SERVICES_OFF:
        assert f"  {service}: true\n" in text
        text = text.replace(f"  {service}: true\n", f"  {service}: false\n")
    return text


def _git(copy: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=copy, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout


def _make_copy(copy: Path) -> None:
    """A clone of HEAD, then the team's change: the environment file and new files only."""
    subprocess.run(
        ["git", "clone", "--quiet", "--depth", "1", f"file://{REPO_ROOT}", str(copy)],
        check=True,
        timeout=120,
    )
    team = copy / "services" / "billing"
    (team / "migrations").mkdir(parents=True)
    (team / "realm").mkdir()
    (team / "__init__.py").write_text('"""The billing service."""\n')
    (team / "queue.py").write_text(QUEUE_MODULE)
    (team / "steps.py").write_text(STEPS_MODULE)
    (team / "migrations" / f"0001_{TABLE}.sql").write_text(MIGRATION)
    (team / "realm" / f"{REALM}.json").write_text(json.dumps(REALM_FILE, indent=2) + "\n")
    env_file = copy / "_dev-env" / "environment.yaml"
    env_file.write_text(_edit_environment(env_file.read_text()))


# --------------------------------------------------------------------- Tilt in the copy
@dataclass
class Stack:
    copy: Path
    env: dict[str, str]
    port: int
    settings: Settings
    log: Path

    def tilt(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(tilt_binary()), *args],
            cwd=self.copy,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def resources(self) -> dict[str, dict[str, Any]]:
        got = self.tilt("get", "uiresources", "-o", "json", "--port", str(self.port), timeout=30)
        if got.returncode != 0:
            return {}
        return {i["metadata"]["name"]: i.get("status", {}) for i in json.loads(got.stdout)["items"]}

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _up(stack: Stack) -> bool:
    """The billing worker serving and Tilt's provisioning run done (failing it fails the test)."""
    status = stack.resources()
    provision = status.get("provision", {}).get("updateStatus")
    assert provision != "error", f"tilt's provision failed:\n{stack.log_tail()}"
    return (
        provision == "ok"
        and status.get("worker-billing-0", {}).get("runtimeStatus") == "ok"
        and status.get("worker-core-0", {}).get("runtimeStatus") == "ok"
    )


@pytest.fixture
def stack() -> Iterator[Stack]:
    # Directly under /tmp, as PostgreSQL (run as `postgres`) must search every parent folder.
    with tempfile.TemporaryDirectory(prefix="conceptor-team-stack-") as tmp:
        yield from _stack(Path(tmp))


def _stack(tmp_path: Path) -> Iterator[Stack]:
    settings = Settings(port_prefix=PREFIX)
    assert listening_ports(settings) == [], "the test's port block must start empty"
    copy = tmp_path / "repo"
    _make_copy(copy)
    # Billing is the file's third queue: the first slot of the next prefix's block.
    billing_port = queue_worker_port(
        PREFIX, None, "billing", 0, copy / "_dev-env" / "environment.yaml"
    )
    assert billing_port == int(PREFIX) * 100 + 100
    assert not _listening(settings, billing_port)
    env = tilt_env(
        PREFIX,
        tmp_path / "localdev",
        # The copy's package, not the venv's editable one, is what every process imports.
        PYTHONPATH=str(copy),
        CONCEPTOR_VENV=str(REPO_ROOT / ".venv"),
        # No drift watch: the test damages objects and reads the plan itself.
        CENTRAL_DRIFT_INTERVAL_SECONDS="0",
    )
    # The copy's file and its defaults: its buckets, its worker block (the next prefix's).
    for name in (
        "CONCEPTOR_ENVIRONMENT_FILE",
        "CENTRAL_BUCKETS",
        "CENTRAL_BUCKETS_FILE",
        "TILT_WORKER_PORT_PREFIX",
    ):
        env.pop(name, None)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "tilt-team-stack.log"
    log.write_text("")
    port = free_port()
    with log.open("ab") as out:
        up = subprocess.Popen(
            [str(tilt_binary()), "up", "--stream", "--port", str(port), *TILT_ARGS],
            cwd=copy,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    handle = Stack(copy=copy, env=env, port=port, settings=settings, log=log)
    try:
        yield handle
    finally:
        handle.tilt("down", *TILT_ARGS, timeout=180)
        stop_tilt_up(up, timeout=90)
        wait_until(
            lambda: listening_ports(settings) == [] and not _listening(settings, billing_port),
            timeout=90,
            message=f"still listening after tilt down: {listening_ports(settings)}",
        )


def _listening(settings: Settings, port: int) -> bool:
    try:
        httpx.get(f"http://{settings.host}:{port}/healthz", timeout=0.5)
    except httpx.HTTPError:
        return False
    return True


# --------------------------------------------------------------------- live checks
async def _billing_tables(settings: Settings) -> list[str]:
    conn = await asyncpg.connect(settings.postgres_dsn.rsplit("/", 1)[0] + f"/{DATABASE}")
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return sorted(r["tablename"] for r in rows)


async def _drop_table(settings: Settings) -> None:
    conn = await asyncpg.connect(settings.postgres_dsn.rsplit("/", 1)[0] + f"/{DATABASE}")
    try:
        await conn.execute(f"DROP TABLE {TABLE}")
    finally:
        await conn.close()


async def _realm(settings: Settings) -> tuple[list[dict[str, Any]], list[str]]:
    """The realm's client named CLIENT (all of them) and the usernames matching USER."""
    async with httpx.AsyncClient(timeout=30) as http:
        token = await admin_token(settings, http)
        auth = {"Authorization": f"Bearer {token}"}
        base = f"{settings.keycloak_url}/admin/realms/{REALM}"
        clients = await http.get(f"{base}/clients", params={"clientId": CLIENT}, headers=auth)
        users = await http.get(
            f"{base}/users", params={"username": USER, "exact": "true"}, headers=auth
        )
        clients.raise_for_status()
        users.raise_for_status()
        return clients.json(), [u["username"] for u in users.json()]


async def _delete_client(settings: Settings) -> None:
    clients, _ = await _realm(settings)
    async with httpx.AsyncClient(timeout=30) as http:
        token = await admin_token(settings, http)
        url = f"{settings.keycloak_url}/admin/realms/{REALM}/clients/{clients[0]['id']}"
        deleted = await http.delete(url, headers={"Authorization": f"Bearer {token}"})
        assert deleted.status_code == 204, deleted.text


async def _bucket(settings: Settings) -> tuple[str | None, list[dict[str, Any]]]:
    """The bucket's policy document (None: none, i.e. private) and its lifecycle rules."""
    async with s3_client(settings) as s3:
        try:
            policy: str | None = (await s3.get_bucket_policy(Bucket=BUCKET))["Policy"]
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "NoSuchBucketPolicy", exc.response
            policy = None
        rules = (await s3.get_bucket_lifecycle_configuration(Bucket=BUCKET))["Rules"]
    return policy, rules


async def _open_bucket(settings: Settings) -> None:
    async with s3_client(settings) as s3:
        document = policy_document(BUCKET, "public-read")
        await s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(document))


async def _anonymous_list_status(settings: Settings) -> int:
    async with httpx.AsyncClient(timeout=10) as http:
        return (await http.get(f"{settings.s3_endpoint}/{BUCKET}/")).status_code


async def _plans(settings: Settings) -> dict[str, Any]:
    client = aioredis.from_url(settings.redis_url, decode_responses=True)
    try:
        raw = await client.hgetall(REDIS_KEY)
    finally:
        await client.aclose()
    return {str(k): json.loads(v) for k, v in raw.items()}


WRITES = ("created", "updated", "deleted")


async def _provision(client: Client) -> dict[str, tuple[str, list[str], int]]:
    """A provisioning run: each step's outcome, what it changed and how many writes it made."""
    handle = await start_provision(client, workflow_id=f"provision-{uuid.uuid4()}")
    result = await handle.result()
    return {
        name: (r.outcome, r.changed, sum(r.counts.get(k, 0) for k in WRITES))
        for name, r in result.steps.items()
    }


async def _invoice(client: Client) -> tuple[str, set[str]]:
    """Run the billing workflow; its result and the identities of the workers that ran it."""
    handle = await client.start_workflow(
        "InvoiceWorkflow",
        [1200, 800],
        id=f"invoice-{uuid.uuid4()}",
        task_queue="billing",
        execution_timeout=timedelta(seconds=60),
    )
    result = await handle.result()
    identities = set()
    async for event in handle.fetch_history_events():
        for attrs in (
            event.workflow_task_completed_event_attributes,
            event.activity_task_completed_event_attributes,
        ):
            if attrs.identity:
                identities.add(attrs.identity)
    return str(result), identities


# --------------------------------------------------------------------- the scenario
@pytest.mark.timeout(1200)
def test_a_team_adds_to_its_stack_without_touching_the_platform(stack: Stack) -> None:
    started = time.monotonic()
    wait_until(
        lambda: _up(stack),
        timeout=720,
        interval=2,
        message=f"stack never up: {stack.resources()}\n{stack.log_tail()}",
    )
    settings = stack.settings
    up_seconds = time.monotonic() - started

    async def scenario() -> None:
        # Each object, live.
        assert await _billing_tables(settings) == [TABLE, "schema_migrations"]
        clients, users = await _realm(settings)
        assert [(c["clientId"], c["redirectUris"]) for c in clients] == [
            (CLIENT, [f"{settings.front_door_url}/partners/*"])
        ]
        assert users == [USER]
        policy, rules = await _bucket(settings)
        assert policy is None  # private: no policy, only signed requests
        assert await _anonymous_list_status(settings) == 403
        assert [
            (r["ID"], r["Status"], r["Filter"].get("Prefix"), r["Expiration"]["Days"])
            for r in rules
        ] == [(RULE, "Enabled", "exports/", 30)]
        assert await _plans(settings) == {
            "basic": {"monthly_cents": 900},
            "pro": {"monthly_cents": 2900},
        }

        client = await connect(settings)
        # A second run writes nothing, in any step.
        again = await _provision(client)
        assert {"migrate_postgres:billing", "import_realm:partners", "billing_plans"} <= set(again)
        assert {name: r for name, r in again.items() if r != ("unchanged", [], 0)} == {}

        # Damage one object of each kind: the plan names each.
        await _drop_table(settings)
        await _delete_client(settings)
        await _open_bucket(settings)
        plan = await make_plan(client, workflow_id=f"plan-{uuid.uuid4()}")
        named = sorted((r.step, r.kind, r.name, r.action, r.fields) for r in plan.changes)
        assert named == [
            ("ensure_buckets", "bucket", BUCKET, "update", ["policy"]),
            ("import_realm:partners", "client", CLIENT, "create", []),
            ("migrate_postgres:billing", "table", f"public.{TABLE}", "create", ["missing"]),
        ], named

        # The billing queue's workflow, on worker-billing-0.
        result, identities = await _invoice(client)
        assert result == "invoice total 2000"
        assert identities == {worker_identity("billing", 0)}

    asyncio.run(scenario())

    # The team's change, as git sees it: the environment file and its own new files.
    assert _git(stack.copy, "diff", "--name-only") == "_dev-env/environment.yaml\n"
    untracked = _git(stack.copy, "ls-files", "--others", "--exclude-standard").split()
    assert sorted(untracked) == [
        "services/billing/__init__.py",
        "services/billing/migrations/0001_invoices.sql",
        "services/billing/queue.py",
        "services/billing/realm/partners.json",
        "services/billing/steps.py",
    ]
    stat = _git(stack.copy, "diff", "--stat")
    assert "_dev-env/environment.yaml" in stat
    for platform in ("conceptor/", "Tiltfile", "_dev-env/tilt/", "pyproject.toml"):
        assert platform not in stat
        assert not any(path.startswith(platform) for path in untracked)
    print(f"stack up in {up_seconds:.0f} s; scenario done in {time.monotonic() - started:.0f} s")
