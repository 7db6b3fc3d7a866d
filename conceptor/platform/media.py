"""Media assets for clients (the API): upload → row `pending` → MediaIngestWorkflow; read rows."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy

from conceptor.platform.s3 import s3_client
from conceptor.platform.settings import Settings
from conceptor.workers.queues import MEDIA_QUEUE

MEDIA_BUCKET = "media"
THUMBNAILS_BUCKET = "thumbnails"
AssetStatus = Literal["pending", "processing", "ready", "failed"]
_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


class MediaAsset(BaseModel):
    """One uploaded file and what the pipeline made of it."""

    id: uuid.UUID
    filename: str
    content_type: str
    size_bytes: int
    status: AssetStatus
    original_key: str
    sizes: list[int]
    width: int | None = None
    height: int | None = None
    thumbnail_keys: dict[int, str] = {}  # longest edge -> key in the thumbnails bucket
    thumbnail_urls: dict[int, str] = {}  # public-read bucket: usable by a browser as-is
    error: str | None = None
    created_at: datetime
    updated_at: datetime


def workflow_id_for(asset_id: uuid.UUID | str) -> str:
    return f"media-{asset_id}"


def original_key_for(asset_id: uuid.UUID | str, filename: str) -> str:
    safe = _UNSAFE_KEY_CHARS.sub("_", filename).strip("._")[:100] or "upload"
    return f"{asset_id}/{safe}"


def thumbnail_key_for(asset_id: uuid.UUID | str, size: int) -> str:
    """Deterministic: a retried or repeated run overwrites, never duplicates."""
    return f"{asset_id}/{size}.jpg"


def thumbnail_url(settings: Settings, key: str) -> str:
    return f"{settings.s3_endpoint}/{THUMBNAILS_BUCKET}/{key}"


def asset_from_row(settings: Settings, row: asyncpg.Record) -> MediaAsset:
    raw = row["thumbnails"]
    keys = {int(k): v for k, v in (json.loads(raw) if isinstance(raw, str) else raw).items()}
    return MediaAsset(
        id=row["id"],
        filename=row["filename"],
        content_type=row["content_type"],
        size_bytes=row["size_bytes"],
        status=row["status"],
        original_key=row["original_key"],
        sizes=list(row["sizes"]),
        width=row["width"],
        height=row["height"],
        thumbnail_keys=keys,
        thumbnail_urls={size: thumbnail_url(settings, key) for size, key in keys.items()},
        error=row["error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def _connect(settings: Settings) -> Any:
    return await asyncpg.connect(settings.postgres_dsn, timeout=10)


async def ingest_upload(
    settings: Settings, client: Client, *, filename: str, content_type: str, data: bytes
) -> MediaAsset:
    """Store the original, record the asset `pending`, start `MediaIngestWorkflow` (id media-<id>).

    Validation of the content happens in the workflow, so a bad file still gets a row that
    says why it failed.
    """
    from conceptor.workflows.media import MediaIngestWorkflow
    from conceptor.workflows.media_models import MediaIngestInput

    asset_id = uuid.uuid4()
    key = original_key_for(asset_id, filename)
    sizes = sorted(set(settings.media_thumbnail_sizes))
    async with s3_client(settings) as s3:
        await s3.put_object(Bucket=MEDIA_BUCKET, Key=key, Body=data, ContentType=content_type)
    conn = await _connect(settings)
    try:
        row = await conn.fetchrow(
            "INSERT INTO media_assets (id, filename, content_type, size_bytes, original_key, sizes)"
            " VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
            asset_id,
            filename,
            content_type,
            len(data),
            key,
            sizes,
        )
    finally:
        await conn.close()
    try:
        await client.start_workflow(
            MediaIngestWorkflow.run,
            MediaIngestInput(
                asset_id=str(asset_id),
                filename=filename,
                original_key=key,
                sizes=sizes,
                heartbeat_timeout_seconds=settings.media_heartbeat_timeout_seconds,
            ),
            id=workflow_id_for(asset_id),
            task_queue=MEDIA_QUEUE,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except Exception as exc:
        # No workflow will ever move this row: say so on it rather than leave it `pending`.
        await _mark_failed(settings, asset_id, f"processing could not start: {exc}")
        raise
    return asset_from_row(settings, row)


async def _mark_failed(settings: Settings, asset_id: uuid.UUID, reason: str) -> None:
    conn = await _connect(settings)
    try:
        await conn.execute(
            "UPDATE media_assets SET status = 'failed', error = $2, updated_at = now()"
            " WHERE id = $1",
            asset_id,
            reason,
        )
    finally:
        await conn.close()


async def get_asset(settings: Settings, asset_id: uuid.UUID | str) -> MediaAsset | None:
    try:
        wanted = uuid.UUID(str(asset_id))
    except ValueError:
        return None
    conn = await _connect(settings)
    try:
        row = await conn.fetchrow("SELECT * FROM media_assets WHERE id = $1", wanted)
    finally:
        await conn.close()
    return None if row is None else asset_from_row(settings, row)


async def list_assets(settings: Settings, *, limit: int = 50, offset: int = 0) -> list[MediaAsset]:
    """Newest first."""
    conn = await _connect(settings)
    try:
        rows = await conn.fetch(
            "SELECT * FROM media_assets ORDER BY created_at DESC, id LIMIT $1 OFFSET $2",
            limit,
            offset,
        )
    finally:
        await conn.close()
    return [asset_from_row(settings, r) for r in rows]
