"""ProvisionWorkflow against the real stack: first run, idempotent re-run, drift repair,
concurrent starts, and no secret in the history."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from botocore.exceptions import ClientError

from conceptor.activities.bucket_policy import normalize, policy_document
from conceptor.client.provisioning import provision_status, start_provision
from conceptor.contracts import ProvisionResult
from conceptor.platform.devservices.stack import LocalStack
from conceptor.platform.keycloak_tokens import admin_token
from conceptor.platform.s3 import s3_client
from conceptor.platform.temporal import connect
from tests.integration.provision_support import (
    ProvisionEnv,
    bucket_policies,
    database_snapshot,
    decoded_history_text,
    diff_paths,
    in_process_worker,
    isolated_env,
    migration_names,
    password_token,
    realm_export,
)
from tests.shipped import ALL_STEPS

pytestmark = pytest.mark.integration


@pytest.fixture
async def env(local_stack: LocalStack, tmp_path: Path) -> AsyncIterator[ProvisionEnv]:
    async with isolated_env(local_stack.settings, tmp_path) as environment:
        yield environment


async def provision(env: ProvisionEnv) -> ProvisionResult:
    client = await connect(env.settings)
    async with in_process_worker(client, env):
        handle = await start_provision(
            client, workflow_id=f"provision-{uuid.uuid4()}", task_queue=env.queue
        )
        return await handle.result()


async def test_first_run_creates_everything(env: ProvisionEnv) -> None:
    """A fresh environment: migrations applied, buckets with policies, realm with working users."""
    result = await provision(env)
    files = migration_names()
    assert result.outcomes == {
        "wait_for_postgres": "unchanged",
        "migrate_postgres": "created",
        "seed_postgres": "created",
        "wait_for_redis": "unchanged",
        "wait_for_minio": "unchanged",
        "ensure_buckets": "created",
        # This run names its own buckets (CENTRAL_BUCKETS), not the file's media/thumbnails:
        # their seed steps seed nothing and say so.
        "seed_bucket:media": "unchanged",
        "seed_bucket:thumbnails": "unchanged",
        "wait_for_keycloak": "unchanged",
        "import_realm": "created",
    }
    # The example application's media library, seeded after the migrations.
    assert result.steps["seed_postgres"].detail == (
        "media_assets: 3 created, 0 updated, 0 deleted, 0 unchanged"
    )
    ours = ", ".join(sorted(env.buckets))
    assert result.steps["seed_bucket:media"].detail == (
        f"bucket media is not provisioned by this run (its buckets: {ours}): not seeded"
    )
    assert result.steps["migrate_postgres"].counts == {
        "created": len(files),
        "updated": 0,
        "deleted": 0,
        "unchanged": 0,
    }
    assert result.steps["ensure_buckets"].counts == {
        "created": 2,
        "updated": 0,
        "deleted": 0,
        "unchanged": 0,
    }
    # realm settings, 2 clients and their 2 audience mappers, 2 roles, 2 groups, 2 users
    assert result.steps["import_realm"].counts == {
        "created": 11,
        "updated": 0,
        "deleted": 0,
        "unchanged": 0,
    }

    db = await database_snapshot(env)
    assert [m[0] for m in db["migrations"]] == files
    assert {c[0] for c in db["columns"]} >= {"provision_runs", "accounts", "schema_migrations"}

    policies = await bucket_policies(env)
    assert policies[env.private_bucket] is None
    assert normalize(policies[env.public_bucket]) == normalize(
        policy_document(env.public_bucket, "public-read")
    )
    async with s3_client(env.settings) as s3:
        for bucket in env.buckets:
            await s3.put_object(Bucket=bucket, Key="probe.txt", Body=b"probe-1")
    async with httpx.AsyncClient(timeout=10) as http:
        public = await http.get(f"{env.settings.s3_endpoint}/{env.public_bucket}/probe.txt")
        private = await http.get(f"{env.settings.s3_endpoint}/{env.private_bucket}/probe.txt")
    assert (public.status_code, public.content) == (200, b"probe-1")
    assert private.status_code == 403

    alice = await password_token(env, "alice", "alice")
    bob = await password_token(env, "bob", "bob")
    assert {"platform-admin", "user"} <= set(alice["realm_access"]["roles"])
    assert "user" in bob["realm_access"]["roles"]
    assert "platform-admin" not in bob["realm_access"]["roles"]
    assert "conceptor-api" in ([alice["aud"]] if isinstance(alice["aud"], str) else alice["aud"])
    assert alice["iss"] == f"{env.settings.keycloak_url}/realms/{env.realm}"
    assert alice["email"] == "admin@technova.dev"

    async with httpx.AsyncClient(timeout=10) as http:
        token = await admin_token(env.settings, http)
        realm = await http.get(
            f"{env.settings.keycloak_url}/admin/realms/{env.realm}",
            headers={"Authorization": f"Bearer {token}"},
        )
    smtp = realm.json()["smtpServer"]
    assert (smtp["host"], smtp["port"]) == ("127.0.0.1", str(env.settings.smtp_port))


async def test_second_run_changes_nothing(env: ProvisionEnv) -> None:
    """Re-provisioning says `unchanged` everywhere and leaves DB, policies and realm identical."""
    await provision(env)
    before = (await database_snapshot(env), await bucket_policies(env), await realm_export(env))
    result = await provision(env)
    after = (await database_snapshot(env), await bucket_policies(env), await realm_export(env))
    assert result.outcomes == dict.fromkeys(ALL_STEPS, "unchanged")
    assert result.steps["migrate_postgres"].counts == {
        "created": 0,
        "updated": 0,
        "deleted": 0,
        "unchanged": len(migration_names()),
    }
    assert result.steps["import_realm"].counts == {
        "created": 0,
        "updated": 0,
        "deleted": 0,
        "unchanged": 11,
    }
    assert after[0] == before[0]
    assert after[1] == before[1]
    assert diff_paths(before[2], after[2]) == []


async def test_drift_is_repaired(env: ProvisionEnv) -> None:
    """A deleted realm role and a wrong bucket policy are restored; the result says `updated`."""
    await provision(env)
    s = env.settings
    async with httpx.AsyncClient(timeout=10) as http:
        headers = {"Authorization": f"Bearer {await admin_token(s, http)}"}
        deleted = await http.delete(
            f"{s.keycloak_url}/admin/realms/{env.realm}/roles/user", headers=headers
        )
    assert deleted.status_code == 204
    bob = await password_token(env, "bob", "bob")
    assert "user" not in bob.get("realm_access", {}).get("roles", [])
    async with s3_client(s) as s3:
        await s3.put_bucket_policy(
            Bucket=env.private_bucket,
            Policy=json.dumps(policy_document(env.private_bucket, "public-read")),
        )

    result = await provision(env)

    assert result.outcomes["import_realm"] == "updated"
    assert result.outcomes["ensure_buckets"] == "updated"
    assert result.outcomes["migrate_postgres"] == "unchanged"
    assert result.steps["ensure_buckets"].changed == [f"~bucket:{env.private_bucket}"]
    diff = result.steps["ensure_buckets"].diff
    assert diff is not None
    assert [c.fields for c in diff.changes if c.action == "update"] == [["policy"]]
    # The role came back, and with it the grants to both users and both groups.
    assert result.steps["import_realm"].changed == [
        "+role:user",
        "~group:/developers",
        "~group:/platform-admins",
        "~user:alice",
        "~user:bob",
    ]
    assert "user" in (await password_token(env, "bob", "bob"))["realm_access"]["roles"]
    assert (await bucket_policies(env))[env.private_bucket] is None


async def test_ten_concurrent_starts_make_one_run(env: ProvisionEnv) -> None:
    """Ten starts under the `provision` id attach to one run; migrations are applied once."""
    client = await connect(env.settings)
    workflow_id = f"provision-{uuid.uuid4()}"
    async with in_process_worker(client, env):
        handles = await asyncio.gather(
            *(
                start_provision(client, workflow_id=workflow_id, task_queue=env.queue)
                for _ in range(10)
            )
        )
        results = await asyncio.gather(*(h.result() for h in handles))
        status = await provision_status(client, workflow_id=workflow_id)
    assert len({h.result_run_id for h in handles}) == 1
    assert all(r == results[0] for r in results)
    assert results[0].steps["migrate_postgres"].counts["created"] == len(migration_names())
    assert status.state == "completed"
    assert [s.state for s in status.steps] == ["completed"] * len(ALL_STEPS)
    conn = await asyncpg.connect(env.settings.postgres_dsn)
    try:
        rows = await conn.fetch("SELECT filename FROM schema_migrations ORDER BY 1")
    finally:
        await conn.close()
    assert [r["filename"] for r in rows] == migration_names()


async def test_concurrent_runs_under_other_ids_apply_nothing_twice(env: ProvisionEnv) -> None:
    """Three runs with different ids at once: one applies, the others find it done; no errors."""
    client = await connect(env.settings)
    async with in_process_worker(client, env):
        handles = await asyncio.gather(
            *(
                start_provision(client, workflow_id=f"ui-{uuid.uuid4()}", task_queue=env.queue)
                for _ in range(3)
            )
        )
        results = await asyncio.gather(*(h.result() for h in handles))
    applied = [r.steps["migrate_postgres"].counts["created"] for r in results]
    assert sorted(applied) == [0, 0, len(migration_names())]
    assert sum(r.steps["ensure_buckets"].counts["created"] for r in results) == 2
    realm_created = [r.steps["import_realm"].counts["created"] for r in results]
    assert sorted(realm_created)[-1] == 11  # exactly one run created the realm whole
    assert sorted(realm_created)[:2] == [0, 0]
    export = await realm_export(env)
    assert sorted(u["username"] for u in export["users"]) == ["alice", "bob"]
    roles = {r["name"] for r in export["realm"]["roles"]["realm"]}
    assert {"platform-admin", "user"} <= roles


async def test_history_holds_no_secret(env: ProvisionEnv) -> None:
    """Inputs, results, heartbeats and failures of a full run contain no secret from settings."""
    client = await connect(env.settings)
    async with in_process_worker(client, env):
        handle = await start_provision(
            client, workflow_id=f"provision-{uuid.uuid4()}", task_queue=env.queue
        )
        await handle.result()
    history = decoded_history_text((await handle.fetch_history()).to_json())
    assert "import_realm" in history and "migrate_postgres" in history  # payloads were decoded
    # Values shorter than 8 characters ("admin") are ordinary words (role "platform-admin").
    secrets = [v for v in env.settings.secret_values() if len(v) >= 8]
    assert secrets
    leaked = [v for v in secrets if v in history]
    assert leaked == []


async def test_private_bucket_refuses_anonymous_listing(env: ProvisionEnv) -> None:
    """Anonymous S3 calls: GetObject allowed on public-read only; listing refused on both."""
    await provision(env)
    async with s3_client(env.settings) as s3:
        await s3.put_object(Bucket=env.public_bucket, Key="a.txt", Body=b"A")
    async with s3_client(env.settings, anonymous=True) as anon:
        body = await (await anon.get_object(Bucket=env.public_bucket, Key="a.txt"))["Body"].read()
        with pytest.raises(ClientError) as info:
            await anon.list_objects_v2(Bucket=env.private_bucket)
    assert body == b"A"
    assert info.value.response["Error"]["Code"] == "AccessDenied"
