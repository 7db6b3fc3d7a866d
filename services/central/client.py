"""Media assets for clients (the API): upload → row `pending` → MediaIngestWorkflow; read rows.

Every function takes the database as `db`: the API passes its connection pool (a request costs a
checkout, not a login); without one, a single connection is opened for the call.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy

from conceptor.platform.s3 import s3_client
from conceptor.platform.settings import Settings
from services.central.contracts import (
    MEDIA_BUCKET,
    MEDIA_INGEST_WORKFLOW,
    MEDIA_QUEUE,
    THUMBNAILS_BUCKET,
    MediaIngestInput,
    media_workflow_id,
)
from services.central.settings import MediaSettings, get_media_settings

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


def original_key_for(asset_id: uuid.UUID | str, filename: str) -> str:
    safe = _UNSAFE_KEY_CHARS.sub("_", filename).strip("._")[:100] or "upload"
    return f"{asset_id}/{safe}"


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


@asynccontextmanager
async def _database(settings: Settings, db: Any | None) -> AsyncIterator[Any]:
    """The caller's pool as it is, or one connection opened (and closed) for this call."""
    if db is not None:
        yield db
        return
    conn = await asyncpg.connect(settings.postgres_dsn, timeout=10)
    try:
        yield conn
    finally:
        await conn.close()


async def ingest_upload(
    settings: Settings,
    client: Client,
    *,
    filename: str,
    content_type: str,
    data: bytes,
    db: Any | None = None,
    media: MediaSettings | None = None,
) -> MediaAsset:
    """Store the original, record the asset `pending`, start `MediaIngestWorkflow` (id media-<id>).

    Validation of the content happens in the workflow, so a bad file still gets a row that
    says why it failed.
    """
    asset_id = uuid.uuid4()
    key = original_key_for(asset_id, filename)
    media = media or get_media_settings()
    sizes = sorted(set(media.thumbnail_sizes))
    async with s3_client(settings) as s3:
        await s3.put_object(Bucket=MEDIA_BUCKET, Key=key, Body=data, ContentType=content_type)
    async with _database(settings, db) as conn:
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
    try:
        await client.start_workflow(
            MEDIA_INGEST_WORKFLOW,
            MediaIngestInput(
                asset_id=str(asset_id),
                filename=filename,
                original_key=key,
                sizes=sizes,
                heartbeat_timeout_seconds=media.heartbeat_timeout_seconds,
            ),
            id=media_workflow_id(asset_id),
            task_queue=MEDIA_QUEUE,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except Exception as exc:
        # No workflow will ever move this row: say so on it rather than leave it `pending`.
        await _mark_failed(settings, db, asset_id, f"processing could not start: {exc}")
        raise
    return asset_from_row(settings, row)


async def _mark_failed(
    settings: Settings, db: Any | None, asset_id: uuid.UUID, reason: str
) -> None:
    async with _database(settings, db) as conn:
        await conn.execute(
            "UPDATE media_assets SET status = 'failed', error = $2, updated_at = now()"
            " WHERE id = $1",
            asset_id,
            reason,
        )


async def get_asset(
    settings: Settings, asset_id: uuid.UUID | str, *, db: Any | None = None
) -> MediaAsset | None:
    try:
        wanted = uuid.UUID(str(asset_id))
    except ValueError:
        return None
    async with _database(settings, db) as conn:
        row = await conn.fetchrow("SELECT * FROM media_assets WHERE id = $1", wanted)
    return None if row is None else asset_from_row(settings, row)


async def list_assets(
    settings: Settings, *, limit: int = 50, offset: int = 0, db: Any | None = None
) -> list[MediaAsset]:
    """Newest first."""
    async with _database(settings, db) as conn:
        rows = await conn.fetch(
            "SELECT * FROM media_assets ORDER BY created_at DESC, id LIMIT $1 OFFSET $2",
            limit,
            offset,
        )
    return [asset_from_row(settings, r) for r in rows]
