"""MinIO's part of a snapshot: server-side copies, so no object's bytes pass through us.

Saving copies each object of a declared bucket to the snapshot bucket under
`<snapshot>/<bucket>/`; restoring copies back only what differs (ETag and size) and deletes
what the snapshot did not hold. S3 has no transaction: before the first write a restore copies
aside every live object it will overwrite or delete, and puts them back if a write fails, so a
failed restore leaves the bucket as it was. (A worker killed mid-restore cannot undo; the
workflow's retry then finishes the restore: the bucket ends fully new.) A bucket that keeps
versions needs neither the copies aside nor, for a deleted object, the copy back
(object_versions).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from botocore.exceptions import ClientError
from temporalio import activity

from conceptor.activities.snapshot.object_versions import (
    Undo,
    current,
    delete_current,
    delete_versions,
    entries,
    keeps_versions,
    markers_over,
    read_index,
    write_index,
)
from conceptor.activities.snapshot.store import SNAPSHOT_BUCKET, object_prefix, refuse
from conceptor.activities.storage import StorageActivities
from conceptor.platform.s3 import s3_client
from conceptor.platform.settings import Settings
from conceptor.snapshot_contracts import (
    SNAPSHOT_CORRUPT,
    BucketPart,
    SnapshotManifest,
    manifest_key,
)

_PARALLEL = 16  # copies in flight: MinIO does the work, we only wait for it
_UNDO = "_undo/"  # the snapshot bucket's room for a restore's copies of the live objects
_MAX_COPY = 5 * 1024**3  # S3's limit for one CopyObject

Listing = dict[str, tuple[str, int]]  # key -> (ETag, size)


def declared_buckets(settings: Settings) -> list[str]:
    return [b.name for b in StorageActivities(settings).desired()]


async def ensure_snapshot_bucket(s3: Any) -> None:
    try:
        await s3.create_bucket(Bucket=SNAPSHOT_BUCKET)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in {
            "BucketAlreadyOwnedByYou",
            "BucketAlreadyExists",
        }:
            raise


async def listing(s3: Any, bucket: str, prefix: str = "") -> Listing:
    """Every current object under `prefix`, keyed without the prefix."""
    out: Listing = {}
    paginator = s3.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            out[obj["Key"][len(prefix) :]] = (str(obj["ETag"]), int(obj["Size"]))
    return out


async def _each(items: Iterable[Any], work: Callable[[Any], Awaitable[object]]) -> int:
    """`work` for every item, `_PARALLEL` at a time, with a heartbeat per hundred; the count."""
    gate = asyncio.Semaphore(_PARALLEL)
    done = 0

    async def one(item: Any) -> None:
        nonlocal done
        async with gate:
            await work(item)
        done += 1
        if done % 100 == 0 and activity.in_activity():
            activity.heartbeat(f"{done} objects")

    items = list(items)
    await asyncio.gather(*(one(i) for i in items))
    return len(items)


async def _copy(
    s3: Any, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str, version: str = ""
) -> str:
    """A server-side copy (of that version, when one is named); the version it made, if any."""
    source = {"Bucket": src_bucket, "Key": src_key, **({"VersionId": version} if version else {})}
    answer = await s3.copy_object(Bucket=dst_bucket, Key=dst_key, CopySource=source)
    return str(answer.get("VersionId") or "")


async def _delete(s3: Any, bucket: str, keys: list[str]) -> None:
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        await s3.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
        )


async def delete_prefix(s3: Any, prefix: str) -> int:
    keys = list(await listing(s3, SNAPSHOT_BUCKET, prefix))
    await _delete(s3, SNAPSHOT_BUCKET, [prefix + k for k in keys])
    return len(keys)


async def save(settings: Settings, name: str, bucket: str) -> BucketPart:
    """Copy every object of `bucket` under the snapshot's prefix (a failed save's leftovers
    are replaced)."""
    prefix = object_prefix(name, bucket)
    async with s3_client(settings) as s3:
        await ensure_snapshot_bucket(s3)
        await delete_prefix(s3, prefix)
        versions: dict[str, str] = {}
        if keeps_versions_now := await keeps_versions(s3, bucket):
            # Which version each copy is of: a restore may bring that version back instead.
            now = current(await entries(s3, bucket))
            live = {key: (e.etag, e.size) for key, e in now.items()}
            versions = {key: e.version_id for key, e in now.items()}
        else:  # no record: a restore reads one only for a part saved with versions
            live = await listing(s3, bucket)
        too_big = [k for k, (_, size) in live.items() if size > _MAX_COPY]
        if too_big:
            raise refuse(
                f"bucket {bucket}: {len(too_big)} object(s) over 5 GiB, which one server-side "
                f"copy cannot take (first: {too_big[0]})"
            )
        await _each(
            live,
            lambda k: _copy(s3, bucket, k, SNAPSHOT_BUCKET, prefix + k, versions.get(k, "")),
        )
        saved = await listing(s3, SNAPSHOT_BUCKET, prefix)
        if keeps_versions_now:
            await write_index(s3, name, bucket, versions)
    missing = sorted(set(live) - set(saved))
    if missing:
        raise RuntimeError(f"bucket {bucket}: {len(missing)} object(s) not copied: {missing[:5]}")
    return BucketPart(
        bucket=bucket,
        objects=len(saved),
        bytes=sum(s for _, s in saved.values()),
        versions=keeps_versions_now,
    )


async def publish_manifest(settings: Settings, manifest: SnapshotManifest) -> None:
    """A copy of the manifest beside the snapshot's objects: what the API lists."""
    async with s3_client(settings) as s3:
        await ensure_snapshot_bucket(s3)
        await s3.put_object(
            Bucket=SNAPSHOT_BUCKET,
            Key=manifest_key(manifest.name),
            Body=manifest.model_dump_json().encode(),
            ContentType="application/json",
        )


async def check_saved(settings: Settings, name: str, part: BucketPart) -> None:
    """Refuse a snapshot whose saved objects of `part` are not all there."""
    async with s3_client(settings) as s3:
        try:
            saved = await listing(s3, SNAPSHOT_BUCKET, object_prefix(name, part.bucket))
        except ClientError:
            saved = {}
    if len(saved) != part.objects:
        raise refuse(
            f"snapshot {name}: bucket {part.bucket} holds {len(saved)} saved objects, its "
            f"manifest {part.objects}",
            SNAPSHOT_CORRUPT,
        )


async def restore(settings: Settings, name: str, part: BucketPart) -> str:
    """Make `part.bucket` hold exactly the snapshot's objects; on a failed write, put back what
    was there."""
    prefix = object_prefix(name, part.bucket)
    async with s3_client(settings) as s3:
        wanted = await listing(s3, SNAPSHOT_BUCKET, prefix)
        if len(wanted) != part.objects:
            raise refuse(
                f"snapshot {name}: bucket {part.bucket} holds {len(wanted)} saved objects, "
                f"its manifest {part.objects}",
                SNAPSHOT_CORRUPT,
            )
        index = await read_index(s3, name, part.bucket) if part.versions else {}
        if index and await keeps_versions(s3, part.bucket):
            revived, copied, deleted = await _restore_with_versions(
                s3, part.bucket, prefix, wanted, index
            )
        else:
            revived, (copied, deleted) = 0, await _restore_by_copies(s3, part, prefix, wanted)
        after = await listing(s3, part.bucket)
    if after != wanted:
        differ = sorted(set(after.items()) ^ set(wanted.items()))
        raise RuntimeError(
            f"bucket {part.bucket} differs from the snapshot after the restore: {differ[:5]}"
        )
    unchanged = len(wanted) - revived - copied
    return (
        f"bucket {part.bucket}: "
        + (f"{revived} objects brought back from their versions (no copy), " if revived else "")
        + f"{copied} objects copied back, {deleted} deleted, {unchanged} unchanged"
    )


async def _restore_by_copies(
    s3: Any, part: BucketPart, prefix: str, wanted: Listing
) -> tuple[int, int]:
    """Copy back what differs, delete what the snapshot did not hold; (copied, deleted)."""
    undo = _UNDO + part.bucket + "/"
    try:
        live = await listing(s3, part.bucket)
    except ClientError:
        await s3.create_bucket(Bucket=part.bucket)
        live = {}
    changed = sorted(k for k, v in wanted.items() if live.get(k) != v)
    extra = sorted(set(live) - set(wanted))
    # What this restore overwrites or deletes, copied aside before the first write.
    await delete_prefix(s3, undo)
    touched = [k for k in changed if k in live] + extra
    await _each(touched, lambda key: _copy(s3, part.bucket, key, SNAPSHOT_BUCKET, undo + key))
    try:
        await _each(changed, lambda key: _copy(s3, SNAPSHOT_BUCKET, prefix + key, part.bucket, key))
        await _delete(s3, part.bucket, extra)
    except Exception:
        await _undo(s3, part.bucket, undo, touched, [k for k in changed if k not in live])
        raise
    await delete_prefix(s3, undo)
    return len(changed), len(extra)


async def _restore_with_versions(
    s3: Any, bucket: str, prefix: str, wanted: Listing, index: dict[str, str]
) -> tuple[int, int, int]:
    """In a bucket that keeps versions: remove the delete markers over each deleted object's
    saved version, copy back the rest that differs, delete what the snapshot did not hold;
    (brought back, copied, deleted). A failure takes back every write (object_versions.Undo)."""
    found = await entries(s3, bucket)
    live = {key: (e.etag, e.size) for key, e in current(found).items()}
    changed = sorted(k for k, v in wanted.items() if live.get(k) != v)
    extra = sorted(set(live) - set(wanted))
    revive = {
        key: markers
        for key in changed
        if (markers := markers_over(found.get(key, []), index.get(key), wanted[key]))
    }
    copy = [key for key in changed if key not in revive]
    undo = Undo()

    async def copy_back(key: str) -> None:
        made = await _copy(s3, SNAPSHOT_BUCKET, prefix + key, bucket, key)
        undo.written.append((key, made))

    try:
        undo.revived.extend(revive)  # first: a marker put back over a key still deleted is moot
        await delete_versions(s3, bucket, [(k, m) for k, ms in revive.items() for m in ms])
        await _each(copy, copy_back)
        await delete_current(s3, bucket, extra, undo)
    except Exception:
        await undo.run(s3, bucket)
        raise
    return len(revive), len(copy), len(extra)


async def _undo(s3: Any, bucket: str, undo: str, touched: list[str], created: list[str]) -> None:
    """Put back the objects a failed restore overwrote or deleted, remove those it added."""
    await _each(touched, lambda key: _copy(s3, SNAPSHOT_BUCKET, undo + key, bucket, key))
    await _delete(s3, bucket, created)
    activity.logger.warning("bucket %s: restore failed, %d objects put back", bucket, len(touched))


async def drop(settings: Settings, name: str) -> int:
    """Delete every object of snapshot `name`; how many there were."""
    async with s3_client(settings) as s3:
        try:
            return await delete_prefix(s3, name + "/")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
                return 0
            raise
