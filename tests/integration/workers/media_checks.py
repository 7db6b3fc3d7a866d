"""What a media test looks at: histories, the thumbnails bucket, Mailpit, the asset rows."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowHandle

from conceptor.platform.s3 import s3_client
from conceptor.platform.settings import Settings
from services.central.contracts import THUMBNAILS_BUCKET, media_workflow_id


async def result_of(client: Client, asset_id: uuid.UUID, timeout: float = 90) -> Any:
    handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(media_workflow_id(asset_id))
    return await asyncio.wait_for(handle.result(), timeout=timeout)


async def activity_attempts(
    client: Client, asset_id: uuid.UUID, activity_type: str
) -> list[tuple[int, str, str]]:
    """(attempt, identity that started it, how it ended) per recorded attempt of an activity."""
    handle = client.get_workflow_handle(media_workflow_id(asset_id))
    scheduled: dict[int, str] = {}
    started: dict[int, tuple[int, str]] = {}
    attempts: list[tuple[int, str, str]] = []
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            scheduled[event.event_id] = (
                event.activity_task_scheduled_event_attributes.activity_type.name
            )
        elif event.HasField("activity_task_started_event_attributes"):
            attrs = event.activity_task_started_event_attributes
            if scheduled.get(attrs.scheduled_event_id) == activity_type:
                started[event.event_id] = (attrs.attempt, attrs.identity)
        elif event.HasField("activity_task_completed_event_attributes"):
            ended = event.activity_task_completed_event_attributes
            if ended.started_event_id in started:
                attempts.append((*started[ended.started_event_id], "completed"))
        elif event.HasField("activity_task_failed_event_attributes"):
            ended_f = event.activity_task_failed_event_attributes
            if ended_f.started_event_id in started:
                attempts.append((*started[ended_f.started_event_id], "failed"))
    return attempts


async def running_on(client: Client, asset_id: uuid.UUID, activity_type: str) -> str:
    """Identity of the worker currently running `activity_type` (AssertionError until one is)."""
    desc = await client.get_workflow_handle(media_workflow_id(asset_id)).describe()
    for pending in desc.raw_description.pending_activities:
        started = pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        if pending.activity_type.name == activity_type and started:
            return pending.last_worker_identity
    msg = f"{activity_type} is not running yet"
    raise AssertionError(msg)


async def thumbnail_objects(settings: Settings, asset_id: uuid.UUID) -> list[str]:
    async with s3_client(settings) as s3:
        listed = await s3.list_objects_v2(Bucket=THUMBNAILS_BUCKET, Prefix=f"{asset_id}/")
    return sorted(obj["Key"] for obj in listed.get("Contents", []))


async def emails_with_subject(settings: Settings, subject: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as http:
        resp = await http.get(
            f"{settings.mailpit_api_url}/api/v1/search", params={"query": f'subject:"{subject}"'}
        )
    resp.raise_for_status()
    return [m for m in resp.json()["messages"] if m["Subject"] == subject]


async def asset_rows(settings: Settings, asset_id: uuid.UUID) -> int:
    conn = await asyncpg.connect(settings.postgres_dsn)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM media_assets WHERE id = $1", asset_id
        )
    finally:
        await conn.close()
    return count
