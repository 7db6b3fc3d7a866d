"""MediaIngestWorkflow: original in MinIO → thumbnails → asset row `ready` → notification."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

# Passed through, models included: re-creating pydantic classes in every sandbox costs CPU.
with workflow.unsafe.imports_passed_through():
    from conceptor.activities.media import (
        AssetActivities,
        CompleteAssetInput,
        CreateThumbnailsInput,
        FailAssetInput,
        MarkAssetInput,
        ThumbnailActivities,
    )
    from conceptor.activities.notify import NotifyActivities, SendNotificationInput
    from conceptor.workers.queues import CORE_QUEUE
    from conceptor.workflows.media_models import MediaIngestInput, MediaIngestResult

_DB_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=10,
)
_THUMBNAIL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=20),
    maximum_attempts=5,
)


def _reason(err: ActivityError) -> tuple[str, str]:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return cause.message, cause.type or "MediaFailed"
    return str(cause or err), "MediaFailed"


@workflow.defn
class MediaIngestWorkflow:
    def __init__(self) -> None:
        self._status = "pending"

    @workflow.query
    def status(self) -> str:
        return self._status

    @workflow.run
    async def run(self, data: MediaIngestInput) -> MediaIngestResult:
        await workflow.execute_activity_method(
            AssetActivities.mark_asset_processing,
            MarkAssetInput(asset_id=data.asset_id),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_DB_RETRY,
        )
        self._status = "processing"
        try:
            thumbs = await workflow.execute_activity_method(
                ThumbnailActivities.create_thumbnails,
                CreateThumbnailsInput(
                    asset_id=data.asset_id,
                    filename=data.filename,
                    original_key=data.original_key,
                    sizes=data.sizes,
                ),
                start_to_close_timeout=timedelta(minutes=5),
                heartbeat_timeout=timedelta(seconds=data.heartbeat_timeout_seconds),
                retry_policy=_THUMBNAIL_RETRY,
                summary=f"thumbnails of {data.filename}",
            )
        except ActivityError as err:
            reason, kind = _reason(err)
            await workflow.execute_activity_method(
                AssetActivities.fail_asset,
                FailAssetInput(asset_id=data.asset_id, reason=reason),
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=_DB_RETRY,
            )
            self._status = "failed"
            workflow.logger.warning("media asset failed", extra={"reason": reason})
            msg = f"media asset {data.asset_id} ({data.filename}) failed: {reason}"
            raise ApplicationError(msg, type=kind, non_retryable=True) from err
        await workflow.execute_activity_method(
            AssetActivities.complete_asset,
            CompleteAssetInput(
                asset_id=data.asset_id,
                width=thumbs.width,
                height=thumbs.height,
                thumbnail_keys=thumbs.thumbnail_keys,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_DB_RETRY,
        )
        self._status = "ready"
        sent = await workflow.execute_activity_method(
            NotifyActivities.send_notification,
            SendNotificationInput(
                subject=f"Media ready: {data.filename}",
                body=(
                    f"{data.filename} ({thumbs.width}x{thumbs.height} {thumbs.source_format}) "
                    f"is ready.\nAsset: {data.asset_id}\nThumbnails (bucket thumbnails):\n"
                    + "".join(f"  {s}px: {k}\n" for s, k in sorted(thumbs.thumbnail_keys.items()))
                ),
                message_key=f"media-{data.asset_id}",
            ),
            task_queue=CORE_QUEUE,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_DB_RETRY,
        )
        workflow.logger.info("media asset ready", extra={"asset_id": data.asset_id})
        return MediaIngestResult(
            asset_id=data.asset_id,
            status="ready",
            thumbnail_keys=thumbs.thumbnail_keys,
            notification_id=sent.message_id,
        )
