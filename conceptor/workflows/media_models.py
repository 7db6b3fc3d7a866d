"""MediaIngestWorkflow's input and result: a plain module, so the sandbox passes it through."""

from __future__ import annotations

from pydantic import BaseModel


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
