"""Media activities: thumbnails (blocking, in the worker's pool) and the asset row (async)."""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
from botocore.exceptions import ClientError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from conceptor.platform.s3 import s3_blocking_client, s3_client
from conceptor.platform.settings import Settings
from services.central.contracts import (
    COMPLETE_ASSET,
    CREATE_THUMBNAILS,
    FAIL_ASSET,
    MARK_ASSET_PROCESSING,
    MEDIA_BUCKET,
    THUMBNAILS_BUCKET,
    AssetChange,
    CompleteAssetInput,
    CreateThumbnailsInput,
    CreateThumbnailsResult,
    FailAssetInput,
    MarkAssetInput,
    thumbnail_key_for,
)
from services.central.imaging import (
    THUMBNAIL_CONTENT_TYPE,
    MediaRejectedError,
    render_thumbnails,
)
from services.central.settings import MediaSettings, get_media_settings


@contextmanager
def heartbeating(detail: str) -> Iterator[None]:
    """Heartbeat from a side thread while one long blocking call (a decode) runs.

    Liveness then does not depend on image size: a busy worker keeps its task, a dead one
    loses it after the heartbeat timeout.
    """
    timeout = activity.info().heartbeat_timeout
    every = max(0.5, timeout.total_seconds() / 4) if timeout else 5.0
    ctx = contextvars.copy_context()  # carries the activity context to the side thread
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(every):
            ctx.run(activity.heartbeat, detail)

    ticker = threading.Thread(target=tick, name="heartbeat", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        ticker.join()


class ThumbnailActivities:
    """The CPU-bound step: a sync activity, so the SDK runs it on the queue's blocking pool.

    Holds only settings (picklable for a process pool); its S3 client is made per process.
    """

    def __init__(self, settings: Settings, media: MediaSettings | None = None) -> None:
        self._settings = settings
        self._media = media or get_media_settings()
        self._s3: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"_settings": self._settings, "_media": self._media, "_s3": None}

    def _client(self) -> Any:
        if self._s3 is None:  # lazily: a worker starts without MinIO being up
            self._s3 = s3_blocking_client(self._settings)
        return self._s3

    @activity.defn(name=CREATE_THUMBNAILS)
    def create_thumbnails(self, data: CreateThumbnailsInput) -> CreateThumbnailsResult:
        s3 = self._client()
        try:
            original = s3.get_object(Bucket=MEDIA_BUCKET, Key=data.original_key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                msg = f"original {MEDIA_BUCKET}/{data.original_key} does not exist"
                raise ApplicationError(msg, type="OriginalMissing", non_retryable=True) from None
            raise
        activity.heartbeat("downloaded")
        try:
            with heartbeating("rendering"):
                rendered = render_thumbnails(
                    original,
                    data.sizes,
                    filename=data.filename,
                    max_pixels=self._media.max_image_pixels,
                )
        except MediaRejectedError as exc:
            raise ApplicationError(exc.reason, type=exc.kind, non_retryable=True) from None
        # Upload only once every size rendered: a bad file leaves nothing behind. Keys are
        # deterministic, so a retry after a crash overwrites rather than duplicates.
        keys: dict[int, str] = {}
        for size, body in sorted(rendered.thumbnails.items()):
            key = thumbnail_key_for(data.asset_id, size)
            s3.put_object(
                Bucket=THUMBNAILS_BUCKET, Key=key, Body=body, ContentType=THUMBNAIL_CONTENT_TYPE
            )
            keys[size] = key
            activity.heartbeat(f"uploaded {size}")
        activity.logger.info("thumbnails written", extra={"sizes": sorted(keys)})
        return CreateThumbnailsResult(
            width=rendered.width,
            height=rendered.height,
            source_format=rendered.source_format,
            thumbnail_keys=keys,
        )


class AssetActivities:
    """Asset-row transitions; the Postgres pool is opened on first use, not at worker start."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._pool: Any = None
        self._lock = asyncio.Lock()

    async def _db(self) -> Any:
        async with self._lock:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._settings.postgres_dsn, min_size=0, max_size=4, timeout=10
                )
        return self._pool

    async def _set(self, asset_id: str, status: str, sql: str, *args: Any) -> AssetChange:
        pool = await self._db()
        result: str = await pool.execute(sql, asset_id, *args)
        if result == "UPDATE 0":
            row = await pool.fetchrow("SELECT status FROM media_assets WHERE id = $1", asset_id)
            if row is None:
                msg = f"media asset {asset_id} has no row in media_assets"
                raise ApplicationError(msg, type="AssetMissing", non_retryable=True)
            return AssetChange(asset_id=asset_id, status=row["status"], changed=False)
        return AssetChange(asset_id=asset_id, status=status, changed=True)

    @activity.defn(name=MARK_ASSET_PROCESSING)
    async def mark_asset_processing(self, data: MarkAssetInput) -> AssetChange:
        return await self._set(
            data.asset_id,
            "processing",
            "UPDATE media_assets SET status = 'processing', updated_at = now()"
            " WHERE id = $1 AND status = 'pending'",
        )

    @activity.defn(name=COMPLETE_ASSET)
    async def complete_asset(self, data: CompleteAssetInput) -> AssetChange:
        keys = json.dumps({str(k): v for k, v in sorted(data.thumbnail_keys.items())})
        return await self._set(
            data.asset_id,
            "ready",
            "UPDATE media_assets SET status = 'ready', width = $2, height = $3,"
            " thumbnails = $4::jsonb, error = NULL, updated_at = now()"
            " WHERE id = $1 AND status <> 'ready'",
            data.width,
            data.height,
            keys,
        )

    @activity.defn(name=FAIL_ASSET)
    async def fail_asset(self, data: FailAssetInput) -> AssetChange:
        """Remove any thumbnail of the asset, then record the reason on its row."""
        prefix = f"{data.asset_id}/"
        async with s3_client(self._settings) as s3:
            listed = await s3.list_objects_v2(Bucket=THUMBNAILS_BUCKET, Prefix=prefix)
            for obj in listed.get("Contents", []):
                await s3.delete_object(Bucket=THUMBNAILS_BUCKET, Key=obj["Key"])
        return await self._set(
            data.asset_id,
            "failed",
            "UPDATE media_assets SET status = 'failed', error = $2, thumbnails = '{}'::jsonb,"
            " updated_at = now() WHERE id = $1 AND status <> 'failed'",
            data.reason,
        )


def media_activities(settings: Settings) -> list[Callable[..., Any]]:
    assets = AssetActivities(settings)
    return [
        ThumbnailActivities(settings).create_thumbnails,
        assets.mark_asset_processing,
        assets.complete_asset,
        assets.fail_asset,
    ]
