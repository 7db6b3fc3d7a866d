"""MediaIngestWorkflow: original in MinIO → thumbnails → asset row `ready` → notification."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

# Passed through: re-creating pydantic classes in every sandbox costs CPU. Activities are
# called by name with the contract's models, so this module needs no activity code.
with workflow.unsafe.imports_passed_through():
    from conceptor.contracts import (
        CORE_QUEUE,
        SEND_NOTIFICATION,
        SendNotificationInput,
        SendNotificationResult,
    )
    from services.central.contracts import (
        COMPLETE_ASSET,
        CREATE_THUMBNAILS,
        FAIL_ASSET,
        MARK_ASSET_PROCESSING,
        MEDIA_INGEST_WORKFLOW,
        STATUS_QUERY,
        AssetChange,
        CompleteAssetInput,
        CreateThumbnailsInput,
        CreateThumbnailsResult,
        FailAssetInput,
        MarkAssetInput,
        MediaIngestInput,
        MediaIngestResult,
    )

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


@workflow.defn(name=MEDIA_INGEST_WORKFLOW)
class MediaIngestWorkflow:
    def __init__(self) -> None:
        self._status = "pending"

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> str:
        return self._status

    @workflow.run
    async def run(self, data: MediaIngestInput) -> MediaIngestResult:
        await workflow.execute_activity(
            MARK_ASSET_PROCESSING,
            MarkAssetInput(asset_id=data.asset_id),
            result_type=AssetChange,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_DB_RETRY,
        )
        self._status = "processing"
        try:
            thumbs = await workflow.execute_activity(
                CREATE_THUMBNAILS,
                CreateThumbnailsInput(
                    asset_id=data.asset_id,
                    filename=data.filename,
                    original_key=data.original_key,
                    sizes=data.sizes,
                ),
                result_type=CreateThumbnailsResult,
                start_to_close_timeout=timedelta(minutes=5),
                heartbeat_timeout=timedelta(seconds=data.heartbeat_timeout_seconds),
                retry_policy=_THUMBNAIL_RETRY,
                summary=f"thumbnails of {data.filename}",
            )
        except ActivityError as err:
            reason, kind = _reason(err)
            await workflow.execute_activity(
                FAIL_ASSET,
                FailAssetInput(asset_id=data.asset_id, reason=reason),
                result_type=AssetChange,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=_DB_RETRY,
            )
            self._status = "failed"
            workflow.logger.warning("media asset failed", extra={"reason": reason})
            msg = f"media asset {data.asset_id} ({data.filename}) failed: {reason}"
            raise ApplicationError(msg, type=kind, non_retryable=True) from err
        await workflow.execute_activity(
            COMPLETE_ASSET,
            CompleteAssetInput(
                asset_id=data.asset_id,
                width=thumbs.width,
                height=thumbs.height,
                thumbnail_keys=thumbs.thumbnail_keys,
            ),
            result_type=AssetChange,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_DB_RETRY,
        )
        self._status = "ready"
        sent = await workflow.execute_activity(
            SEND_NOTIFICATION,
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
            result_type=SendNotificationResult,
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
