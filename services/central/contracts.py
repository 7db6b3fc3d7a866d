"""central's contracts: its queue, workflow and activity names, and their models.

Imported by its workflow, activities, queue, client and routes alike; it imports no code of
theirs, so the API starts a media workflow without loading Pillow or boto3.
"""

from __future__ import annotations

from pydantic import BaseModel

MEDIA_QUEUE = "media"
MEDIA_INGEST_WORKFLOW = "MediaIngestWorkflow"
STATUS_QUERY = "status"  # the workflow's state: pending, processing, ready, failed
CREATE_THUMBNAILS = "create_thumbnails"
MARK_ASSET_PROCESSING = "mark_asset_processing"
COMPLETE_ASSET = "complete_asset"
FAIL_ASSET = "fail_asset"
# The buckets the environment file declares for it.
MEDIA_BUCKET = "media"
THUMBNAILS_BUCKET = "thumbnails"


def media_workflow_id(asset_id: object) -> str:
    """One media workflow per asset: `media-<asset id>`."""
    return f"media-{asset_id}"


def thumbnail_key_for(asset_id: object, size: int) -> str:
    """Deterministic: a retried or repeated run overwrites, never duplicates."""
    return f"{asset_id}/{size}.jpg"


class MediaIngestInput(BaseModel):
    asset_id: str
    filename: str
    original_key: str
    sizes: list[int]
    heartbeat_timeout_seconds: float = 10.0


class MediaIngestResult(BaseModel):
    asset_id: str
    status: str
    thumbnail_keys: dict[int, str]
    notification_id: str


class CreateThumbnailsInput(BaseModel):
    asset_id: str
    filename: str
    original_key: str
    sizes: list[int]


class CreateThumbnailsResult(BaseModel):
    width: int
    height: int
    source_format: str
    thumbnail_keys: dict[int, str]


class MarkAssetInput(BaseModel):
    asset_id: str


class CompleteAssetInput(BaseModel):
    asset_id: str
    width: int
    height: int
    thumbnail_keys: dict[int, str]


class FailAssetInput(BaseModel):
    asset_id: str
    reason: str


class AssetChange(BaseModel):
    asset_id: str
    status: str
    changed: bool  # False when a retry found the row already in this state
