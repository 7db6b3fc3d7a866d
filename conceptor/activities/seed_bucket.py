"""The seed_bucket step: a bucket's seed folder reconciled with its objects by content hash,
after the buckets are ensured (the pure part is conceptor/activities/seed/objects.py)."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from conceptor.activities.declared import load_declared
from conceptor.activities.diffs import step_result
from conceptor.activities.reconcile import check_plan, digest, verify
from conceptor.activities.seed.files import SeedRefused
from conceptor.activities.seed.objects import (
    SEED_METADATA,
    LiveObject,
    ObjectPlan,
    SeedFile,
    plan_objects,
    read_folder,
    same_content,
)
from conceptor.activities.seed_postgres import SEED_FAILED, SEED_REFUSED
from conceptor.activities.storage import StorageActivities
from conceptor.activities.waiting import heartbeating
from conceptor.contracts import SEED_BUCKET_STEP, Diff, ReconcileInput, StepResult
from conceptor.platform.environment import Bucket

# Requests to MinIO at once (HEADs of metadata, uploads, deletes): enough to hide latency,
# few enough not to crowd a dev machine's MinIO.
_PARALLEL = 16
_NO_SUCH_BUCKET = {"NoSuchBucket", "404", "NotFound"}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class BucketSeeding:
    """One pass over one bucket's seed folder: read the live objects, plan, apply."""

    def __init__(self, s3: Any, bucket: Bucket, files: list[SeedFile], shown: str) -> None:
        assert bucket.seed is not None
        self.s3 = s3
        self.name = bucket.name
        self.mode = bucket.seed.mode
        self.files = files
        self.shown = shown
        self.target = f"seed of bucket {bucket.name}"
        self.limit = asyncio.Semaphore(_PARALLEL)
        self.missing = False  # the bucket does not exist (yet)

    async def _listing(self) -> dict[str, LiveObject]:
        out: dict[str, LiveObject] = {}
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.name)
        try:
            async for page in pages:
                for obj in page.get("Contents", []):
                    etag = str(obj.get("ETag", "")).strip('"')
                    out[obj["Key"]] = LiveObject(obj["Key"], etag, int(obj.get("Size", 0)))
        except ClientError as exc:
            if _code(exc) not in _NO_SUCH_BUCKET:
                raise
            self.missing = True
        return out

    async def _with_mark(self, obj: LiveObject) -> LiveObject:
        """`obj` with the SHA-256 seeding recorded on it, if any (one HEAD)."""
        async with self.limit:
            try:
                head = await self.s3.head_object(Bucket=self.name, Key=obj.key)
            except ClientError as exc:
                if _code(exc) in {"404", "NoSuchKey", "NotFound"}:
                    return obj  # deleted since the listing: the verify pass sees it
                raise
        mark = head.get("Metadata", {}).get(SEED_METADATA)
        return LiveObject(obj.key, obj.etag, obj.size, mark)

    async def read(self) -> tuple[ObjectPlan, Diff]:
        """The live objects that matter, their marks read where the listing cannot tell
        (an object outside the folder under `managed`, an ETag that is not the file's MD5),
        and the plan."""
        listed = await self._listing()
        wanted = {f.key: f for f in self.files}
        probe = [
            obj
            for key, obj in listed.items()
            if (key in wanted and not same_content(wanted[key], obj))
            or (key not in wanted and self.mode == "managed")
        ]
        for marked in await asyncio.gather(*(self._with_mark(o) for o in probe)):
            listed[marked.key] = marked
        relevant = {
            k: o for k, o in listed.items() if k in wanted or (o.seeded and self.mode == "managed")
        }
        plan = plan_objects(self.name, self.mode, self.files, relevant, self.shown)
        live_state = sorted((o.key, o.etag, o.size, o.seeded) for o in relevant.values())
        diff = Diff(
            target=self.target,
            changes=plan.changes,
            desired_digest=digest(
                [self.name, self.mode, [(f.key, f.sha256, f.content_type) for f in self.files]]
            ),
            # A bucket not made yet holds no object, as an empty one: a plan made before
            # ensure_buckets made it is applied as it was seen.
            live_digest=digest(live_state),
        )
        return plan, diff

    async def _put(self, file: SeedFile) -> None:
        async with self.limit:
            body = await asyncio.to_thread(file.path.read_bytes)
            await self.s3.put_object(
                Bucket=self.name,
                Key=file.key,
                Body=body,
                ContentType=file.content_type,
                # Checked by the server: a file that changed since it was hashed is refused.
                ContentMD5=base64.b64encode(bytes.fromhex(file.md5)).decode(),
                Metadata={SEED_METADATA: file.sha256},
            )
            activity.heartbeat(f"uploaded {file.key}")

    async def _delete(self, key: str) -> None:
        async with self.limit:
            await self.s3.delete_object(Bucket=self.name, Key=key)

    async def apply(self, plan: ObjectPlan) -> None:
        await asyncio.gather(
            *(self._put(f) for f in [*plan.create, *plan.update]),
            *(self._delete(k) for k in plan.delete),
        )


class BucketSeedActivities:
    """The bucket seed step, on the worker's S3 client."""

    def __init__(self, storage: StorageActivities) -> None:
        self.storage = storage

    @activity.defn(name=SEED_BUCKET_STEP)
    async def seed_bucket(self, data: ReconcileInput | None = None) -> StepResult:
        """Reconcile a declared bucket's objects with its seed folder: files checked before
        any write, uploaded (create/update) and deleted (managed), listed again and verified.
        `plan`: compute, write nothing. `target`: the bucket's name."""
        env, file = load_declared(SEED_REFUSED)
        name = data.target if data is not None else None
        found = [(i, b) for i, b in enumerate(env.buckets) if b.name == name and b.seed]
        if not found:
            msg = f"{file} declares no bucket {name!r} with a seed folder"
            raise ApplicationError(msg, type=SEED_REFUSED, non_retryable=True)
        index, bucket = found[0]
        assert bucket.seed is not None
        settings = self.storage.settings
        attempt = activity.info().attempt
        target = f"seed of bucket {bucket.name}"
        provisioned = [d.name for d in self.storage.desired()]
        if bucket.name not in provisioned:
            # A run that names its own buckets (CENTRAL_BUCKETS, as the tests do) does not
            # provision the file's: nothing of them is compared or written, and it says so.
            detail = (
                f"bucket {bucket.name} is not provisioned by this run (its buckets: "
                f"{', '.join(provisioned)}): not seeded"
            )
            empty = Diff(target=target, desired_digest="", live_digest="")
            return await step_result(settings, empty, attempts=attempt, detail=detail)
        where = f"{file}: buckets[{index}].seed.folder"
        folder = (file.resolve().parent / bucket.seed.folder).resolve()
        try:
            files = await asyncio.to_thread(read_folder, Path(folder), bucket.seed.folder, where)
        except SeedRefused as exc:
            raise ApplicationError(str(exc), type=SEED_REFUSED, non_retryable=True) from None
        async with heartbeating():
            seeding = BucketSeeding(await self.storage.s3(), bucket, files, bucket.seed.folder)
            plan, before = await seeding.read()
            if data is not None and data.plan:
                return await step_result(
                    settings, before, planned=True, attempts=attempt, detail=plan.counts_line()
                )
            check_plan(before, data)
            if seeding.missing:
                msg = (
                    f"bucket {bucket.name} does not exist: ensure_buckets makes it, and this "
                    "step runs after it (was it deleted meanwhile?)"
                )
                raise ApplicationError(msg, type=SEED_FAILED, non_retryable=True)
            if not before.is_empty:
                try:
                    await seeding.apply(plan)
                except ClientError as exc:
                    msg = f"{target}: S3 refused a write: {_code(exc)}: {exc}"
                    raise ApplicationError(msg, type=SEED_FAILED) from None
                _, after = await seeding.read()
                verify(after)
        return await step_result(settings, before, attempts=attempt, detail=plan.counts_line())
