"""Object-storage activities: wait for MinIO; reconcile buckets (policy, versioning, lifecycle)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from botocore.exceptions import ClientError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from conceptor.activities.bucket_policy import policy_document
from conceptor.activities.buckets import (
    BucketsFile,
    BucketSpec,
    DesiredBucket,
    LiveBucket,
    bucket_changes,
    buckets_diff,
    desired_buckets,
    lifecycle_from_s3,
    lifecycle_rules_to_put,
    parse_buckets_file,
)
from conceptor.activities.diffs import step_result
from conceptor.activities.reconcile import check_plan, verify
from conceptor.activities.waiting import address_of, heartbeating, wait_for
from conceptor.contracts import Change, Diff, ReconcileInput, StepResult, WaitInput
from conceptor.platform import environment
from conceptor.platform.s3 import s3_client
from conceptor.platform.settings import Settings

BUCKET_REJECTED = "BucketRejected"
# Codes that mean "the request, not the server, is wrong": retrying cannot help.
_CONFIG_ERRORS = {
    "InvalidBucketName",
    "MalformedPolicy",
    "MalformedXML",
    "InvalidArgument",
    "InvalidRequest",
    "AccessDenied",
    "NotImplemented",
}
_NO_SUCH_BUCKET = {"404", "NoSuchBucket", "NotFound"}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class StorageActivities:
    """Activities bound to one settings object (the root credentials stay in it)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._clients = contextlib.AsyncExitStack()
        self._s3: Any = None

    async def _client(self) -> Any:
        """One S3 client per worker: building one costs ~0.1 s of CPU on the event loop."""
        if self._s3 is None:
            self._s3 = await self._clients.enter_async_context(s3_client(self.settings))
        return self._s3

    async def s3(self) -> Any:
        """The worker's S3 client (the seed_bucket step shares it)."""
        return await self._client()

    @activity.defn(name="wait_for_minio")
    async def wait_for_minio(self, wait: WaitInput) -> StepResult:
        """Until an authenticated ListBuckets succeeds."""

        async def probe() -> str:
            listed = await (await self._client()).list_buckets()
            return f"{len(listed.get('Buckets', []))} buckets"

        return await wait_for("minio", address_of(self.settings.s3_endpoint, 80), probe, wait)

    def desired(self) -> list[DesiredBucket]:
        """The environment file's buckets, or the buckets file (validated) plus the `buckets`
        setting when either is given; refusals before any read."""
        from_file = self._environment_buckets()
        if from_file is not None:
            return from_file
        path = self.settings.buckets_file
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            msg = f"{path}: cannot be read: {exc.strerror} (CENTRAL_BUCKETS_FILE names it)"
            raise ApplicationError(msg, type="BucketsFileInvalid", non_retryable=True) from None
        return desired_buckets(path, parse_buckets_file(path, text), self.settings.buckets)

    def _environment_buckets(self) -> list[DesiredBucket] | None:
        """The environment file's buckets, unless CENTRAL_BUCKETS or CENTRAL_BUCKETS_FILE is
        set (a run that names its own buckets, as the tests do) or the file cannot be read."""
        if {"buckets", "buckets_file"} & self.settings.model_fields_set:
            return None
        file = environment.default_file()
        try:
            env = environment.load(file)
        except environment.EnvironmentFileError:
            return None
        # The file's rules allow `x-` notes that buckets.json refuses: validate them afresh.
        declared = BucketsFile(
            buckets={
                b.name: BucketSpec.model_validate(
                    # The seed folder is the seed_bucket step's, not a bucket setting.
                    b.model_dump(mode="json", exclude={"name", "seed"}, exclude_none=True)
                )
                for b in env.buckets
            }
        )
        return desired_buckets(file, declared, {})

    async def live(self, names: list[str]) -> list[LiveBucket]:
        s3 = await self._client()
        return list(await asyncio.gather(*(read_bucket(s3, n) for n in names)))

    @activity.defn(name="ensure_buckets")
    async def ensure_buckets(self, data: ReconcileInput | None = None) -> StepResult:
        """Reconcile every declared bucket; `plan` computes the diff and writes nothing.

        Objects are never touched; lifecycle rules the file does not list are reported as
        drift and kept.
        """
        desired = self.desired()
        names = [d.name for d in desired]
        attempt = activity.info().attempt
        async with heartbeating():
            live = await self.live(names)
            diff = buckets_diff(desired, live)
            if data is not None and data.plan:
                return await step_result(self.settings, diff, planned=True, attempts=attempt)
            check_plan(diff, data)
            s3 = await self._client()
            by_name = {b.name: b for b in live}
            applied = await asyncio.gather(
                *(_apply_bucket(s3, d, by_name[d.name]) for d in desired)
            )
            after = buckets_diff(desired, await self.live(names))
        verify(after)
        done = Diff(
            target=diff.target,
            changes=[c for changes in applied for c in changes],
            desired_digest=diff.desired_digest,
            live_digest=diff.live_digest,
        )
        detail = ", ".join(f"{d.name} {d.policy}" for d in desired)
        return await step_result(self.settings, done, attempts=attempt, detail=detail)


# ----- reading the live state --------------------------------------------------------------


async def read_bucket(s3: Any, name: str) -> LiveBucket:
    """Existence, policy, versioning and lifecycle of one bucket, read concurrently."""
    try:
        await s3.head_bucket(Bucket=name)
    except ClientError as exc:
        if _code(exc) in _NO_SUCH_BUCKET:
            return LiveBucket(name=name, exists=False)
        raise
    policy, versioning, lifecycle = await asyncio.gather(
        _read_policy(s3, name), read_versioning(s3, name), _read_lifecycle(s3, name)
    )
    parsed = [lifecycle_from_s3(rule) for rule in lifecycle]
    return LiveBucket(
        name=name,
        exists=True,
        policy=policy,
        versioning=versioning,
        lifecycle=[r for r in parsed if r is not None],
        lifecycle_raw=lifecycle,
    )


async def _read_policy(s3: Any, bucket: str) -> str | None:
    try:
        return str((await s3.get_bucket_policy(Bucket=bucket))["Policy"])
    except ClientError as exc:
        if _code(exc) != "NoSuchBucketPolicy":
            raise
        return None


async def read_versioning(s3: Any, bucket: str) -> str:
    """ "", "Enabled" or "Suspended"."""
    return str((await s3.get_bucket_versioning(Bucket=bucket)).get("Status", ""))


async def _read_lifecycle(s3: Any, bucket: str) -> list[dict[str, Any]]:
    try:
        rules = (await s3.get_bucket_lifecycle_configuration(Bucket=bucket)).get("Rules", [])
    except ClientError as exc:
        if _code(exc) != "NoSuchLifecycleConfiguration":
            raise
        return []
    return [dict(rule) for rule in rules]


# ----- applying ----------------------------------------------------------------------------


async def _apply_bucket(s3: Any, want: DesiredBucket, live: LiveBucket) -> list[Change]:
    """Apply this bucket's changes; returns what was actually applied (a creator that lost a
    race to a concurrent run finds the bucket made and applies only what still differs)."""
    changes = bucket_changes(want, live)
    main = changes[0]
    try:
        if main.action == "create" and not await _create(s3, want.name):
            live = await read_bucket(s3, want.name)
            changes = bucket_changes(want, live)
            main = changes[0]
        if main.action in ("create", "update"):
            await _write(s3, want, live, main.fields)
    except ClientError as exc:
        if _code(exc) not in _CONFIG_ERRORS:
            raise
        msg = f"bucket {want.name!r} ({want.source}) rejected by S3: {_code(exc)}: {exc}"
        raise ApplicationError(msg, type=BUCKET_REJECTED, non_retryable=True) from None
    if main.action != "unchanged":
        activity.logger.info("bucket %s %sd: %s", want.name, main.action, ", ".join(main.fields))
    return changes


async def _create(s3: Any, bucket: str) -> bool:
    """True if this call created the bucket; a concurrent creator's bucket is accepted."""
    try:
        await s3.create_bucket(Bucket=bucket)
    except ClientError as exc:
        if _code(exc) in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
            return False
        raise
    return True


async def _write(s3: Any, want: DesiredBucket, live: LiveBucket, fields: list[str]) -> None:
    """Write only the aspects `fields` names; each is one S3 call."""
    if "policy" in fields:
        document = policy_document(want.name, want.policy)
        if document is None:
            await s3.delete_bucket_policy(Bucket=want.name)
        else:
            await s3.put_bucket_policy(Bucket=want.name, Policy=json.dumps(document))
    if "versioning" in fields:
        status = "Enabled" if want.versioning else "Suspended"
        await s3.put_bucket_versioning(Bucket=want.name, VersioningConfiguration={"Status": status})
    if any(f.startswith("lifecycle[") for f in fields):
        rules = lifecycle_rules_to_put(want, live)
        if rules:
            await s3.put_bucket_lifecycle_configuration(
                Bucket=want.name, LifecycleConfiguration={"Rules": rules}
            )
        else:
            await s3.delete_bucket_lifecycle(Bucket=want.name)
