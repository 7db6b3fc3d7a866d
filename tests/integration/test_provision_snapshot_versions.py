"""A snapshot of a bucket that keeps versions, on the real MinIO: deleted objects come back from
their saved versions with no copy, the rest is copied back, a failed restore takes back every
write, and without the save's record of versions (an imported snapshot) the restore copies."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from conceptor.activities.snapshot import objects
from conceptor.activities.snapshot.object_versions import index_key
from conceptor.activities.snapshot.store import SNAPSHOT_BUCKET
from conceptor.platform.devservices.stack import LocalStack
from conceptor.platform.s3 import s3_client
from conceptor.platform.settings import Settings
from conceptor.snapshot_contracts import BucketPart

pytestmark = pytest.mark.integration

KEYS = ("a.bin", "b.bin", "c.bin", "d.bin")


async def _contents(settings: Settings, bucket: str) -> dict[str, bytes]:
    async with s3_client(settings) as s3:
        listed = await s3.list_objects_v2(Bucket=bucket)
        out = {}
        for obj in listed.get("Contents", []):
            got = await s3.get_object(Bucket=bucket, Key=obj["Key"])
            out[obj["Key"]] = await got["Body"].read()
        return out


async def _current_versions(settings: Settings, bucket: str) -> dict[str, str]:
    async with s3_client(settings) as s3:
        listed = await s3.list_object_versions(Bucket=bucket)
    return {v["Key"]: v["VersionId"] for v in listed.get("Versions", []) if v["IsLatest"]}


async def _damage(settings: Settings, bucket: str) -> None:
    """Two objects deleted, one overwritten, one added; d.bin left as it was."""
    async with s3_client(settings) as s3:
        for key in ("a.bin", "b.bin"):
            await s3.delete_object(Bucket=bucket, Key=key)
        await s3.put_object(Bucket=bucket, Key="c.bin", Body=b"overwritten")
        await s3.put_object(Bucket=bucket, Key="e.bin", Body=b"added after the save")


@pytest.fixture
async def saved(local_stack: LocalStack) -> AsyncIterator[tuple[Settings, str, str, BucketPart]]:
    """A versioned bucket of four objects, saved as a snapshot; both removed afterwards."""
    settings = local_stack.settings
    bucket, name = f"versions-{uuid.uuid4().hex[:8]}", f"test-versions-{uuid.uuid4().hex[:8]}"
    async with s3_client(settings) as s3:
        await s3.create_bucket(Bucket=bucket)
        await s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        for key in KEYS:
            await s3.put_object(Bucket=bucket, Key=key, Body=os.urandom(300_000))
    part = await objects.save(settings, name, bucket)
    yield settings, bucket, name, part
    await objects.drop(settings, name)
    async with s3_client(settings) as s3:
        listed = await s3.list_object_versions(Bucket=bucket)
        every = [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]
        for v in every:
            await s3.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
        await s3.delete_bucket(Bucket=bucket)


async def test_deleted_objects_come_back_from_their_versions_and_the_rest_is_copied(
    saved: tuple[Settings, str, str, BucketPart],
) -> None:
    settings, bucket, name, part = saved
    assert part.versions and part.objects == len(KEYS)
    before, versions_before = (
        await _contents(settings, bucket),
        await _current_versions(settings, bucket),
    )
    await _damage(settings, bucket)

    detail = await objects.restore(settings, name, part)

    assert detail == (
        f"bucket {bucket}: 2 objects brought back from their versions (no copy), "
        "1 objects copied back, 1 deleted, 1 unchanged"
    )
    assert await _contents(settings, bucket) == before
    after = await _current_versions(settings, bucket)
    # Brought back, not copied: the very versions that were saved are current again.
    assert {k: after[k] for k in ("a.bin", "b.bin", "d.bin")} == {
        k: versions_before[k] for k in ("a.bin", "b.bin", "d.bin")
    }
    assert after["c.bin"] != versions_before["c.bin"]  # overwritten since: copied back
    # An unchanged second restore writes nothing.
    again = await objects.restore(settings, name, part)
    assert again.endswith("0 objects copied back, 0 deleted, 4 unchanged")
    assert await _current_versions(settings, bucket) == after


async def test_a_restore_failing_half_way_takes_back_every_write(
    saved: tuple[Settings, str, str, BucketPart], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, bucket, name, part = saved
    await _damage(settings, bucket)
    damaged = await _contents(settings, bucket)

    async def refused(*_args: Any, **_kwargs: Any) -> str:
        raise RuntimeError("copy refused (injected)")

    # After the markers' removal, before any copy: the two objects brought back must go again.
    monkeypatch.setattr(objects, "_copy", refused)
    with pytest.raises(RuntimeError, match="injected"):
        await objects.restore(settings, name, part)

    assert await _contents(settings, bucket) == damaged


async def test_without_the_saved_versions_a_restore_copies(
    saved: tuple[Settings, str, str, BucketPart],
) -> None:
    """As for a snapshot imported from another machine: its export holds no version record."""
    settings, bucket, name, part = saved
    before = await _contents(settings, bucket)
    async with s3_client(settings) as s3:
        await s3.delete_object(Bucket=SNAPSHOT_BUCKET, Key=index_key(name, bucket))
    await _damage(settings, bucket)

    detail = await objects.restore(settings, name, part)

    assert detail == f"bucket {bucket}: 3 objects copied back, 1 deleted, 1 unchanged"
    assert await _contents(settings, bucket) == before
