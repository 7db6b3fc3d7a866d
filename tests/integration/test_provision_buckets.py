"""ensure_buckets as a reconciler against the real MinIO: create, re-run with zero writes,
drift repaired and named, plan without writes, CORS and bad declarations refused."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from botocore.exceptions import ClientError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from conceptor.activities.bucket_policy import normalize, policy_document
from conceptor.activities.storage import StorageActivities
from conceptor.client.provisioning import start_provision
from conceptor.contracts import PlanDigests, ReconcileInput, StepResult
from conceptor.platform.devservices.stack import LocalStack
from conceptor.platform.s3 import s3_client
from conceptor.platform.temporal import connect
from tests.integration.provision_support import (
    ProvisionEnv,
    in_process_worker,
    isolated_env,
    migration_names,
)

pytestmark = pytest.mark.integration

# S3 operations that only read; any other operation the step sends is a write.
_READS = ("Get", "Head", "List")


class Storage:
    """The activity object of one environment, with every S3 call it sends recorded."""

    def __init__(self, env: ProvisionEnv) -> None:
        self.env = env
        self.activities = StorageActivities(env.settings)
        self.calls: list[str] = []
        self._recording = False

    async def run(self, *, plan: bool = False, data: ReconcileInput | None = None) -> StepResult:
        if not self._recording:
            # botocore's own event hook on the client the activity uses: every request it sends.
            s3 = await self.activities._client()

            def record(model: Any, **_: Any) -> None:
                self.calls.append(model.name)

            s3.meta.events.register("before-call.s3.*", record)
            self._recording = True
        data = ReconcileInput(plan=True) if plan else data
        result: StepResult = await ActivityEnvironment().run(self.activities.ensure_buckets, data)
        return result

    @property
    def writes(self) -> list[str]:
        return [c for c in self.calls if not c.startswith(_READS)]


@pytest.fixture
async def env(local_stack: LocalStack, tmp_path: Path) -> AsyncIterator[ProvisionEnv]:
    async with isolated_env(local_stack.settings, tmp_path) as environment:
        try:
            yield environment
        finally:
            await _remove_versions(environment)


async def _remove_versions(env: ProvisionEnv) -> None:
    """Versioned buckets keep old versions that the shared cleanup does not delete."""
    async with s3_client(env.settings) as s3:
        for bucket in env.buckets:
            try:
                listed = await s3.list_object_versions(Bucket=bucket)
            except ClientError:
                continue
            for v in [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]:
                await s3.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])


def declare(env: ProvisionEnv, buckets: dict[str, Any]) -> None:
    env.settings.buckets_file.write_text(json.dumps({"buckets": buckets}, indent=2))


def media(env: ProvisionEnv) -> str:
    return env.private_bucket


def thumbs(env: ProvisionEnv) -> str:
    return env.public_bucket


RULES = [
    {"id": "expire-tmp", "prefix": "tmp/", "expire_days": 7},
    {"id": "old-versions", "noncurrent_expire_days": 30},
]


def full_declaration(env: ProvisionEnv) -> dict[str, Any]:
    return {
        media(env): {"versioning": True, "lifecycle": RULES},
        thumbs(env): {"policy": "public-read", "versioning": False, "lifecycle": []},
    }


async def live_state(env: ProvisionEnv) -> dict[str, Any]:
    """Every bucket setting provisioning manages, as S3 returns it (raw, for byte equality)."""
    state: dict[str, Any] = {}
    async with s3_client(env.settings) as s3:
        for bucket in sorted(env.buckets):
            entry: dict[str, Any] = {}
            try:
                await s3.head_bucket(Bucket=bucket)
            except ClientError:
                state[bucket] = None
                continue
            try:
                entry["policy"] = (await s3.get_bucket_policy(Bucket=bucket))["Policy"]
            except ClientError as exc:
                entry["policy"] = exc.response["Error"]["Code"]
            versioning = await s3.get_bucket_versioning(Bucket=bucket)
            entry["versioning"] = versioning.get("Status", "")
            try:
                lifecycle = await s3.get_bucket_lifecycle_configuration(Bucket=bucket)
                entry["lifecycle"] = lifecycle["Rules"]
            except ClientError as exc:
                entry["lifecycle"] = exc.response["Error"]["Code"]
            state[bucket] = entry
    return state


async def test_create_then_rerun_writes_nothing(env: ProvisionEnv) -> None:
    """Both buckets created with policy, versioning and rules; a re-run makes no S3 write."""
    declare(env, full_declaration(env))
    storage = Storage(env)

    first = await storage.run()

    assert first.outcome == "created"
    assert first.counts == {"created": 2, "updated": 0, "deleted": 0, "unchanged": 0}
    assert sorted(first.changed) == sorted([f"+bucket:{media(env)}", f"+bucket:{thumbs(env)}"])
    assert first.diff is not None
    fields = {c.name: c.fields for c in first.diff.changes}
    assert fields[media(env)] == [
        "versioning",
        "lifecycle[id=expire-tmp]",
        "lifecycle[id=old-versions]",
    ]
    assert fields[thumbs(env)] == ["policy"]
    live = await live_state(env)
    assert live[media(env)]["policy"] == "NoSuchBucketPolicy"
    assert normalize(live[thumbs(env)]["policy"]) == normalize(
        policy_document(thumbs(env), "public-read")
    )
    assert live[media(env)]["versioning"] == "Enabled"
    assert live[thumbs(env)]["versioning"] == ""
    rules = {r["ID"]: r for r in live[media(env)]["lifecycle"]}
    assert rules["expire-tmp"]["Expiration"] == {"Days": 7}
    assert rules["expire-tmp"]["Filter"] == {"Prefix": "tmp/"}
    assert rules["old-versions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert live[thumbs(env)]["lifecycle"] == "NoSuchLifecycleConfiguration"
    assert storage.writes  # the counter sees writes when there are some

    storage.calls.clear()
    second = await storage.run()

    assert second.outcome == "unchanged"
    assert second.counts == {"created": 0, "updated": 0, "deleted": 0, "unchanged": 2}
    assert second.changed == []
    assert storage.calls  # it did read the live state
    assert storage.writes == []
    assert await live_state(env) == live


async def test_drift_is_repaired_and_named(env: ProvisionEnv) -> None:
    """Policy opened, versioning suspended, a rule removed: each restored and named; a rule
    made by hand is reported as drift and kept; objects stay."""
    declare(env, full_declaration(env))
    storage = Storage(env)
    await storage.run()
    async with s3_client(env.settings) as s3:
        await s3.put_object(Bucket=media(env), Key="tmp/keep.txt", Body=b"kept")
        await s3.put_bucket_policy(
            Bucket=media(env), Policy=json.dumps(policy_document(media(env), "public-read"))
        )
        await s3.put_bucket_versioning(
            Bucket=media(env), VersioningConfiguration={"Status": "Suspended"}
        )
        await s3.put_bucket_lifecycle_configuration(
            Bucket=media(env),
            LifecycleConfiguration={
                "Rules": [
                    {
                        "ID": "old-versions",
                        "Status": "Enabled",
                        "Filter": {"Prefix": ""},
                        "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
                    }
                ]
            },
        )
        handmade = {
            "ID": "handmade",
            "Status": "Enabled",
            "Filter": {"Prefix": "logs/"},
            "Expiration": {"Days": 3},
        }
        await s3.put_bucket_lifecycle_configuration(
            Bucket=thumbs(env), LifecycleConfiguration={"Rules": [handmade]}
        )

    plan = await storage.run(plan=True)
    repaired = await storage.run()

    for result in (plan, repaired):
        assert result.outcome == "updated"
        assert result.changed == [
            f"~bucket:{media(env)}",
            f"!lifecycle-rule:{thumbs(env)}/handmade",
        ]
        assert result.diff is not None
        by_name = {c.name: c for c in result.diff.changes}
        assert by_name[media(env)].fields == ["policy", "versioning", "lifecycle[id=expire-tmp]"]
        assert by_name[thumbs(env)].action == "unchanged"
    assert plan.planned and not repaired.planned
    live = await live_state(env)
    assert live[media(env)]["policy"] == "NoSuchBucketPolicy"
    assert live[media(env)]["versioning"] == "Enabled"
    assert sorted(r["ID"] for r in live[media(env)]["lifecycle"]) == [
        "expire-tmp",
        "old-versions",
    ]
    assert [r["ID"] for r in live[thumbs(env)]["lifecycle"]] == ["handmade"]
    async with s3_client(env.settings) as s3:
        body = await (await s3.get_object(Bucket=media(env), Key="tmp/keep.txt"))["Body"].read()
    assert body == b"kept"

    storage.calls.clear()
    again = await storage.run()
    assert again.outcome == "unchanged"
    assert again.changed == [f"!lifecycle-rule:{thumbs(env)}/handmade"]
    assert storage.writes == []


async def test_a_changed_rule_is_updated_by_field(env: ProvisionEnv) -> None:
    """Editing a rule in the file rewrites it and names the field that differed."""
    declare(env, full_declaration(env))
    storage = Storage(env)
    await storage.run()
    declaration = full_declaration(env)
    declaration[media(env)]["lifecycle"] = [{**RULES[0], "expire_days": 14}, RULES[1]]
    declare(env, declaration)

    result = await storage.run()

    assert result.changed == [f"~bucket:{media(env)}"]
    assert result.diff is not None
    assert result.diff.changes[0].fields == ["lifecycle[id=expire-tmp].expire_days"]
    rules = {r["ID"]: r for r in (await live_state(env))[media(env)]["lifecycle"]}
    assert rules["expire-tmp"]["Expiration"] == {"Days": 14}


async def test_plan_writes_nothing(env: ProvisionEnv) -> None:
    """A plan lists what applying would do; S3 sees no write and every setting stays."""
    declare(env, full_declaration(env))
    storage = Storage(env)

    planned = await storage.run(plan=True)

    assert planned.planned
    assert planned.outcome == "created"
    assert sorted(planned.changed) == sorted([f"+bucket:{media(env)}", f"+bucket:{thumbs(env)}"])
    assert planned.diff is not None and planned.diff.desired_digest and planned.diff.live_digest
    assert storage.writes == []
    assert await live_state(env) == {media(env): None, thumbs(env): None}

    await storage.run()
    async with s3_client(env.settings) as s3:
        await s3.put_bucket_policy(
            Bucket=media(env), Policy=json.dumps(policy_document(media(env), "public-read"))
        )
    before = await live_state(env)
    storage.calls.clear()

    planned = await storage.run(plan=True)

    assert planned.changed == [f"~bucket:{media(env)}"]
    assert storage.writes == []
    assert await live_state(env) == before


async def test_a_plan_is_applied_only_while_nothing_moved(env: ProvisionEnv) -> None:
    """Applying a saved plan: refused before any write once the live state moved; applied when
    it did not."""
    declare(env, full_declaration(env))
    storage = Storage(env)
    planned = await storage.run(plan=True)
    assert planned.diff is not None
    saw = PlanDigests(
        desired_digest=planned.diff.desired_digest, live_digest=planned.diff.live_digest
    )
    async with s3_client(env.settings) as s3:
        await s3.create_bucket(Bucket=media(env))
    storage.calls.clear()

    with pytest.raises(ApplicationError) as info:
        await storage.run(data=ReconcileInput(expected=saw))

    assert info.value.type == "StalePlan" and info.value.non_retryable
    assert storage.writes == []
    planned = await storage.run(plan=True)
    assert planned.diff is not None
    saw = PlanDigests(
        desired_digest=planned.diff.desired_digest, live_digest=planned.diff.live_digest
    )
    applied = await storage.run(data=ReconcileInput(expected=saw))
    assert applied.changed == [f"~bucket:{media(env)}", f"+bucket:{thumbs(env)}"]


async def test_minio_has_no_per_bucket_cors(env: ProvisionEnv) -> None:
    """Our MinIO build answers PutBucketCors with 501 NotImplemented (the reason CORS is
    refused below; if this starts to pass, CORS can become managed)."""
    declare(env, {})
    await Storage(env).run()
    async with s3_client(env.settings) as s3:
        with pytest.raises(ClientError) as info:
            await s3.put_bucket_cors(
                Bucket=media(env),
                CORSConfiguration={
                    "CORSRules": [{"AllowedMethods": ["GET"], "AllowedOrigins": ["http://x"]}]
                },
            )
    assert info.value.response["Error"]["Code"] == "NotImplemented"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501


async def test_cors_is_refused_before_any_write(env: ProvisionEnv) -> None:
    declare(
        env,
        {
            media(env): {
                "cors": [{"allowed_origins": ["http://localhost:3000"], "allowed_methods": ["GET"]}]
            }
        },
    )
    storage = Storage(env)
    with pytest.raises(ApplicationError) as info:
        await storage.run()
    assert info.value.non_retryable
    assert info.value.type == "Unmanaged"
    path = env.settings.buckets_file
    assert info.value.message.startswith(
        f"{path}: buckets.{media(env)}.cors: bucket {media(env)}: MinIO does not implement "
        "per-bucket CORS (PutBucketCors answers 501 NotImplemented"
    )
    assert storage.calls == []
    assert await live_state(env) == {media(env): None, thumbs(env): None}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"policy": "public-write"},
            "buckets.{bucket}.policy: Input should be 'private' or 'public-read'",
        ),
        ({"versioned": True}, "buckets.{bucket}.versioned: Extra inputs are not permitted"),
        (
            {"lifecycle": [{"id": "x", "prefix": "a/"}]},
            "buckets.{bucket}.lifecycle[0]: Value error, a rule needs expire_days or "
            "noncurrent_expire_days",
        ),
        (
            {"lifecycle": [{"id": "x", "expire_days": 0}]},
            "buckets.{bucket}.lifecycle[0].expire_days: Input should be greater than or equal to 1",
        ),
    ],
)
async def test_bad_declaration_names_file_bucket_and_field(
    env: ProvisionEnv, entry: dict[str, Any], message: str
) -> None:
    declare(env, {media(env): entry})
    storage = Storage(env)
    with pytest.raises(ApplicationError) as info:
        await storage.run()
    assert info.value.non_retryable
    assert info.value.type == "BucketsFileInvalid"
    expected = f"{env.settings.buckets_file}: " + message.format(bucket=media(env))
    assert info.value.message == expected
    assert storage.calls == []


async def test_policy_stated_twice_must_agree(env: ProvisionEnv) -> None:
    declare(env, {media(env): {"policy": "public-read"}})
    with pytest.raises(ApplicationError) as info:
        await Storage(env).run()
    assert info.value.message == (
        f"{env.settings.buckets_file}: buckets.{media(env)}.policy is 'public-read' but "
        f"CENTRAL_BUCKETS gives {media(env)} 'private'; state the policy in one place"
    )


async def test_plan_through_the_workflow_writes_nothing(env: ProvisionEnv) -> None:
    """ProvisionPlanWorkflow hands `plan` to both steps across Temporal: the buckets and the
    migrations it would create are listed, and neither exists afterwards."""
    declare(env, full_declaration(env))
    client = await connect(env.settings)
    async with in_process_worker(client, env):
        handle = await start_provision(
            client,
            plan=True,
            steps=["wait_for_postgres", "migrate_postgres", "wait_for_minio", "ensure_buckets"],
            workflow_id=f"plan-{uuid.uuid4()}",
            task_queue=env.queue,
        )
        result = await handle.result()
    buckets, migrations = result.steps["ensure_buckets"], result.steps["migrate_postgres"]
    assert buckets.planned and migrations.planned
    assert sorted(buckets.changed) == sorted([f"+bucket:{media(env)}", f"+bucket:{thumbs(env)}"])
    assert migrations.changed == [f"+migration:{n}" for n in migration_names()]
    assert await live_state(env) == {media(env): None, thumbs(env): None}
    conn = await asyncpg.connect(env.settings.postgres_dsn)
    try:
        tables = await conn.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', "
            "'information_schema')"
        )
    finally:
        await conn.close()
    assert tables == 0
