"""Object-storage activities: wait for MinIO, ensure the buckets and their access policies."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from botocore.exceptions import ClientError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from conceptor.activities.bucket_policy import normalize, policy_document
from conceptor.activities.waiting import address_of, heartbeating, wait_for
from conceptor.contracts import StepResult, WaitInput
from conceptor.platform.s3 import s3_client
from conceptor.platform.settings import BucketPolicy, Settings

BUCKET_REJECTED = "BucketRejected"
# Codes that mean "the request, not the server, is wrong": retrying cannot help.
_CONFIG_ERRORS = {"InvalidBucketName", "MalformedPolicy", "InvalidArgument", "AccessDenied"}


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

    @activity.defn(name="wait_for_minio")
    async def wait_for_minio(self, wait: WaitInput) -> StepResult:
        """Until an authenticated ListBuckets succeeds."""

        async def probe() -> str:
            listed = await (await self._client()).list_buckets()
            return f"{len(listed.get('Buckets', []))} buckets"

        return await wait_for("minio", address_of(self.settings.s3_endpoint, 80), probe, wait)

    @activity.defn(name="ensure_buckets")
    async def ensure_buckets(self) -> StepResult:
        """Create missing buckets and correct their policies; objects are never touched."""
        s3 = await self._client()
        async with heartbeating():
            buckets = sorted(self.settings.buckets.items())
            changes = await asyncio.gather(*(_ensure(s3, b, p) for b, p in buckets))
        labels = [f"{bucket}:{policy}" for bucket, policy in buckets]
        return StepResult.from_counts(
            created=[n for n, c in zip(labels, changes, strict=True) if c == "created"],
            updated=[n for n, c in zip(labels, changes, strict=True) if c == "updated"],
            unchanged=[n for n, c in zip(labels, changes, strict=True) if c == "unchanged"],
            attempts=activity.info().attempt,
            detail=", ".join(f"{b} {p}" for b, p in sorted(self.settings.buckets.items())),
        )


async def _ensure(s3: Any, bucket: str, policy: BucketPolicy) -> str:
    try:
        made = await _ensure_bucket(s3, bucket)
        fixed = await _ensure_policy(s3, bucket, policy)
    except ClientError as exc:
        if _code(exc) not in _CONFIG_ERRORS:
            raise
        msg = f"bucket {bucket!r} ({policy}) rejected by S3: {_code(exc)}: {exc}"
        raise ApplicationError(msg, type=BUCKET_REJECTED, non_retryable=True) from None
    return "created" if made else "updated" if fixed else "unchanged"


async def _ensure_bucket(s3: Any, bucket: str) -> bool:
    """True if this call created the bucket; a concurrent creator's bucket is accepted."""
    try:
        await s3.head_bucket(Bucket=bucket)
        return False
    except ClientError as exc:
        if _code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
            raise
    try:
        await s3.create_bucket(Bucket=bucket)
    except ClientError as exc:
        if _code(exc) in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
            return False
        raise
    return True


async def _ensure_policy(s3: Any, bucket: str, policy: BucketPolicy) -> bool:
    """True if the policy read back differed from the wanted one and was corrected."""
    wanted = policy_document(bucket, policy)
    if normalize(await _read_policy(s3, bucket)) == normalize(wanted):
        return False
    if wanted is None:
        await s3.delete_bucket_policy(Bucket=bucket)
    else:
        await s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(wanted))
    # Read it back: a server that stores something else than asked must not pass silently.
    stored = await _read_policy(s3, bucket)
    if normalize(stored) != normalize(wanted):
        msg = f"bucket {bucket!r}: S3 stored policy {stored!r} instead of the {policy} policy"
        raise ApplicationError(msg, type=BUCKET_REJECTED, non_retryable=True)
    activity.logger.info("bucket %s policy set to %s", bucket, policy)
    return True


async def _read_policy(s3: Any, bucket: str) -> str | None:
    try:
        return str((await s3.get_bucket_policy(Bucket=bucket))["Policy"])
    except ClientError as exc:
        if _code(exc) != "NoSuchBucketPolicy":
            raise
        return None
