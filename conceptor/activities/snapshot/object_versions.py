"""A versioned bucket's part of a restore: deleted objects come back from their versions.

When a bucket keeps versions (`versioning: true` in the environment file), deleting an object
only puts a delete marker over it. A save records which version of each object it copied; a
restore that finds that version still in the bucket, with only delete markers over it, removes
the markers: the object is back, byte for byte, and no byte is copied. Every other object that
differs is copied back from the snapshot, as in any bucket.

Every write here is undone without copying either: a removed marker by a new one, a copy by
removing the version it made, a deletion by removing the marker it put. A restore that fails
half-way therefore leaves the bucket's objects as they were.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError
from temporalio import activity

from conceptor.activities.snapshot.store import SNAPSHOT_BUCKET
from conceptor.activities.storage import read_versioning


@dataclass(frozen=True)
class Entry:
    """One version or delete marker of a key."""

    version_id: str
    marker: bool
    latest: bool
    modified: datetime
    etag: str = ""
    size: int = 0


def index_key(name: str, bucket: str) -> str:
    """Where a save records each object's version: beside the objects, never among them (a
    bucket's name holds no `_`, so no bucket's objects live under `<name>/_versions/`)."""
    return f"{name}/_versions/{bucket}.json"


async def keeps_versions(s3: Any, bucket: str) -> bool:
    try:
        return await read_versioning(s3, bucket) == "Enabled"
    except ClientError:
        return False


async def entries(s3: Any, bucket: str) -> dict[str, list[Entry]]:
    """Every version and delete marker of every key."""
    out: dict[str, list[Entry]] = {}
    paginator = s3.get_paginator("list_object_versions")
    async for page in paginator.paginate(Bucket=bucket):
        for v in page.get("Versions", []):
            out.setdefault(v["Key"], []).append(
                Entry(
                    str(v["VersionId"]),
                    False,
                    bool(v["IsLatest"]),
                    v["LastModified"],
                    str(v["ETag"]),
                    int(v["Size"]),
                )
            )
        for m in page.get("DeleteMarkers", []):
            out.setdefault(m["Key"], []).append(
                Entry(str(m["VersionId"]), True, bool(m["IsLatest"]), m["LastModified"])
            )
    return out


def current(all_entries: dict[str, list[Entry]]) -> dict[str, Entry]:
    """Each key's current object (a key whose latest entry is a delete marker has none)."""
    return {key: e for key, es in all_entries.items() for e in es if e.latest and not e.marker}


async def write_index(s3: Any, name: str, bucket: str, versions: dict[str, str]) -> None:
    await s3.put_object(
        Bucket=SNAPSHOT_BUCKET,
        Key=index_key(name, bucket),
        Body=json.dumps(versions, sort_keys=True).encode(),
        ContentType="application/json",
    )


async def read_index(s3: Any, name: str, bucket: str) -> dict[str, str]:
    """The versions a save recorded; none for a snapshot imported from another machine (its
    version ids name nothing here) or saved while the bucket kept no versions."""
    try:
        got = await s3.get_object(Bucket=SNAPSHOT_BUCKET, Key=index_key(name, bucket))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404", "NoSuchBucket"}:
            return {}
        raise
    loaded = json.loads(await got["Body"].read())
    return {str(k): str(v) for k, v in loaded.items()}


def markers_over(es: list[Entry], version_id: str | None, want: tuple[str, int]) -> list[str]:
    """The delete markers to remove so that `version_id` is the key's current object again;
    none when that cannot bring it back (the version is gone or differs from what was saved,
    or a newer version was written since: removing markers would bring that one back)."""
    saved = next((e for e in es if e.version_id == version_id and not e.marker), None)
    if saved is None or (saved.etag, saved.size) != want:
        return []
    if any(not e.marker and e is not saved and e.modified >= saved.modified for e in es):
        return []
    return [e.version_id for e in es if e.marker and e.modified >= saved.modified]


@dataclass
class Undo:
    """What a restore wrote so far, so that a failure can take it back without copies."""

    revived: list[str] = field(default_factory=list)  # keys whose markers were removed
    written: list[tuple[str, str]] = field(default_factory=list)  # (key, version) it made

    async def run(self, s3: Any, bucket: str) -> None:
        for key in self.revived:
            await s3.delete_object(Bucket=bucket, Key=key)  # a new marker: deleted again
        await delete_versions(s3, bucket, self.written)
        activity.logger.warning(
            "bucket %s: restore failed, %d objects deleted again, %d versions removed",
            bucket,
            len(self.revived),
            len(self.written),
        )


async def delete_versions(s3: Any, bucket: str, versions: Iterable[tuple[str, str]]) -> None:
    """Remove these exact versions or markers; fail on any refused."""
    objects = [{"Key": k, "VersionId": v} for k, v in versions]
    await _delete_objects(s3, bucket, objects, "version(s) not removed")


async def delete_current(s3: Any, bucket: str, keys: list[str], undo: Undo) -> None:
    """Delete these keys (markers over them), each marker recorded for the undo."""

    def record(done: dict[str, Any]) -> None:
        if done.get("DeleteMarkerVersionId"):
            undo.written.append((done["Key"], done["DeleteMarkerVersionId"]))

    objects = [{"Key": k} for k in keys]
    await _delete_objects(s3, bucket, objects, "object(s) not deleted", record)


async def _delete_objects(
    s3: Any,
    bucket: str,
    objects: list[dict[str, str]],
    refused: str,
    on_deleted: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """DeleteObjects a thousand at a time (S3's limit); a failure names the first refused.
    With `on_deleted`, each chunk's answer lists what it deleted (not quiet), passed on before
    a later chunk can fail."""
    for start in range(0, len(objects), 1000):
        answer = await s3.delete_objects(
            Bucket=bucket,
            Delete={"Objects": objects[start : start + 1000], "Quiet": on_deleted is None},
        )
        if on_deleted is not None:
            for done in answer.get("Deleted", []):
                on_deleted(done)
        if answer.get("Errors"):
            first = answer["Errors"][0]
            raise RuntimeError(
                f"bucket {bucket}: {len(answer['Errors'])} {refused}, first "
                f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}"
            )
