"""MediaIngestWorkflow on real workers: thumbnails, asset rows, email; failures leave nothing."""

from __future__ import annotations

import io
import socket
import uuid
from collections.abc import Callable

import httpx
import pytest
from PIL import Image
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from conceptor.platform.settings import Settings
from services.central.client import get_asset, ingest_upload
from services.central.contracts import media_workflow_id
from services.central.settings import MediaSettings
from tests.helpers import assert_eventually
from tests.integration.workers.conftest import make_image
from tests.integration.workers.media_checks import (
    activity_attempts,
    asset_rows,
    emails_with_subject,
    result_of,
    running_on,
    thumbnail_objects,
)
from tests.worker_procs import WorkerProc

pytestmark = pytest.mark.integration
HOST = socket.gethostname()
MEDIA_IDENTITIES = {f"worker-media-0@{HOST}", f"worker-media-1@{HOST}"}


@pytest.fixture
def media_workers(spawn_worker: Callable[..., WorkerProc]) -> list[WorkerProc]:
    """A core worker (notifications) and two media workers, all polling."""
    procs = [spawn_worker("core", 0), spawn_worker("media", 0), spawn_worker("media", 1)]
    for proc in procs:
        proc.wait_polling()
    return procs


async def test_media_ingest_makes_thumbnails_row_and_email(
    worker_services: Settings, temporal: Client, media_workers: list[WorkerProc]
) -> None:
    """A PNG becomes 128/512 JPEG thumbnails (public), a `ready` row and one email."""
    settings = worker_services
    filename = f"photo-{uuid.uuid4().hex[:8]}.png"
    asset = await ingest_upload(
        settings,
        temporal,
        filename=filename,
        content_type="image/png",
        data=make_image(1600, 1200),
    )
    assert (asset.status, asset.sizes) == ("pending", [128, 512])
    result = await result_of(temporal, asset.id)
    keys = {128: f"{asset.id}/128.jpg", 512: f"{asset.id}/512.jpg"}
    assert result["thumbnail_keys"] == {"128": keys[128], "512": keys[512]}
    stored = await get_asset(settings, asset.id)
    assert stored is not None
    assert (stored.status, stored.width, stored.height, stored.error) == ("ready", 1600, 1200, None)
    assert stored.thumbnail_keys == keys
    assert await thumbnail_objects(settings, asset.id) == sorted(keys.values())
    async with httpx.AsyncClient(timeout=10) as http:  # anonymous: the bucket is public-read
        thumb = await http.get(stored.thumbnail_urls[512])
    assert (thumb.status_code, thumb.headers["content-type"]) == (200, "image/jpeg")
    assert Image.open(io.BytesIO(thumb.content)).size == (512, 384)
    emails = await assert_eventually(
        lambda: _one_email(settings, f"Media ready: {filename}"), timeout=20
    )
    assert emails[0]["To"][0]["Address"] == settings.mail_notify_to
    assert await asset_rows(settings, asset.id) == 1


async def _one_email(settings: Settings, subject: str) -> list[dict[str, object]]:
    emails = await emails_with_subject(settings, subject)
    assert len(emails) == 1, emails
    return emails


@pytest.mark.parametrize(
    ("filename", "content_type", "data", "kind", "reason"),
    [
        (
            "broken.png",
            "image/png",
            make_image(640, 480)[:20_000],
            "CorruptImage",
            "broken-{tag}.png is a corrupt PNG image: image file is truncated",
        ),
        (
            "notes.txt",
            "text/plain",
            b"not a picture\n" * 100,
            "UnsupportedMedia",
            "notes-{tag}.txt is not a supported image (supported: JPEG, PNG, WEBP)",
        ),
    ],
)
async def test_media_ingest_rejects_bad_file(
    worker_services: Settings,
    temporal: Client,
    media_workers: list[WorkerProc],
    filename: str,
    content_type: str,
    data: bytes,
    kind: str,
    reason: str,
) -> None:
    """Corrupt or non-image: `failed` with the reason, non-retryable, no thumbnails, no email."""
    settings = worker_services
    tag = uuid.uuid4().hex[:8]
    stem, ext = filename.split(".")
    name = f"{stem}-{tag}.{ext}"
    asset = await ingest_upload(
        settings, temporal, filename=name, content_type=content_type, data=data
    )
    with pytest.raises(WorkflowFailureError) as err:
        await result_of(temporal, asset.id)
    cause = err.value.cause
    assert isinstance(cause, ApplicationError)
    expected = reason.format(tag=tag)
    assert (cause.type, cause.non_retryable) == (kind, True)
    assert cause.message == f"media asset {asset.id} ({name}) failed: {expected}"
    stored = await get_asset(settings, asset.id)
    assert stored is not None
    assert (stored.status, stored.error, stored.thumbnail_keys) == ("failed", expected, {})
    attempts = await activity_attempts(temporal, asset.id, "create_thumbnails")
    assert [(attempt, ended) for attempt, _, ended in attempts] == [(1, "failed")]
    assert attempts[0][1] in MEDIA_IDENTITIES
    assert await thumbnail_objects(settings, asset.id) == []
    assert await emails_with_subject(settings, f"Media ready: {name}") == []


async def test_two_media_workers_share_load(
    worker_services: Settings, temporal: Client, media_workers: list[WorkerProc]
) -> None:
    """Under a burst of uploads both media workers run thumbnails (both identities in histories)."""
    settings = worker_services
    image = make_image(1600, 1200)
    assets = [
        await ingest_upload(
            settings, temporal, filename=f"burst-{i}.png", content_type="image/png", data=image
        )
        for i in range(12)
    ]
    identities: set[str] = set()
    for asset in assets:
        await result_of(temporal, asset.id)
        attempts = await activity_attempts(temporal, asset.id, "create_thumbnails")
        assert [(attempt, ended) for attempt, _, ended in attempts] == [(1, "completed")]
        identities.add(attempts[0][1])
    assert identities == MEDIA_IDENTITIES


async def test_killed_worker_activity_completes_on_the_other(
    worker_services: Settings,
    temporal: Client,
    media_workers: list[WorkerProc],
    large_png: bytes,
) -> None:
    """SIGKILL mid-thumbnail: after the heartbeat timeout the other worker finishes it, once."""
    settings = worker_services
    filename = f"large-{uuid.uuid4().hex[:8]}.png"
    asset = await ingest_upload(
        settings,
        temporal,
        filename=filename,
        content_type="image/png",
        data=large_png,
        media=MediaSettings(heartbeat_timeout_seconds=2.0),
    )
    victim_id = await assert_eventually(
        lambda: running_on(temporal, asset.id, "create_thumbnails"), timeout=30, interval=0.05
    )
    by_identity = {f"worker-media-{p.index}@{HOST}": p for p in media_workers if p.queue == "media"}
    by_identity[victim_id].kill()
    (survivor_id,) = MEDIA_IDENTITIES - {victim_id}
    result = await result_of(temporal, asset.id, timeout=120)
    assert result["status"] == "ready"
    attempts = await activity_attempts(temporal, asset.id, "create_thumbnails")
    # A timed-out attempt records no events of its own: only the final one is in history.
    assert attempts == [(2, survivor_id, "completed")]
    stored = await get_asset(settings, asset.id)
    assert stored is not None
    assert (stored.status, stored.width, stored.height) == ("ready", 8000, 6000)
    assert await thumbnail_objects(settings, asset.id) == [
        f"{asset.id}/128.jpg",
        f"{asset.id}/512.jpg",
    ]
    assert await asset_rows(settings, asset.id) == 1
    await assert_eventually(lambda: _one_email(settings, f"Media ready: {filename}"), timeout=20)


async def test_worker_logs_carry_bindings(
    worker_services: Settings, temporal: Client, media_workers: list[WorkerProc]
) -> None:
    """Activity and workflow log lines carry queue, worker identity, workflow id, activity type."""
    asset = await ingest_upload(
        worker_services,
        temporal,
        filename="logged.png",
        content_type="image/png",
        data=make_image(320, 240),
    )
    await result_of(temporal, asset.id)
    ((_, identity, _),) = await activity_attempts(temporal, asset.id, "create_thumbnails")
    wf_id = media_workflow_id(asset.id)

    async def lines() -> tuple[dict[str, object], dict[str, object]]:
        logs = [line for proc in media_workers for line in proc.logs()]
        activity_line = next(
            (
                line
                for line in logs
                if line.get("event") == "thumbnails written" and line.get("workflow_id") == wf_id
            ),
            None,
        )
        workflow_line = next(
            (
                line
                for line in logs
                if line.get("event") == "media asset ready" and line.get("workflow_id") == wf_id
            ),
            None,
        )
        assert activity_line is not None and workflow_line is not None
        return activity_line, workflow_line

    activity_line, workflow_line = await assert_eventually(lines, timeout=10)
    assert {k: activity_line[k] for k in ("queue", "worker", "activity_type", "attempt")} == {
        "queue": "media",
        "worker": identity,
        "activity_type": "create_thumbnails",
        "attempt": 1,
    }
    assert activity_line["sizes"] == [128, 512]
    assert (workflow_line["queue"], workflow_line["workflow_type"]) == (
        "media",
        "MediaIngestWorkflow",
    )
    assert workflow_line["worker"] in MEDIA_IDENTITIES


async def test_media_ingest_in_a_process_pool(
    worker_services: Settings, temporal: Client, spawn_worker: Callable[..., WorkerProc]
) -> None:
    """With CENTRAL_WORKER_POOL_KIND={"media": "process"} thumbnails render in child
    processes, same result."""
    pooled = spawn_worker("media", 2, CENTRAL_WORKER_POOL_KIND='{"media": "process"}')
    procs = [spawn_worker("core", 0), pooled]
    for proc in procs:
        proc.wait_polling()
    asset = await ingest_upload(
        worker_services,
        temporal,
        filename="pooled.png",
        content_type="image/png",
        data=make_image(1200, 900),
    )
    await result_of(temporal, asset.id)
    attempts = await activity_attempts(temporal, asset.id, "create_thumbnails")
    assert attempts == [(1, f"worker-media-2@{HOST}", "completed")]
    assert await thumbnail_objects(worker_services, asset.id) == [
        f"{asset.id}/128.jpg",
        f"{asset.id}/512.jpg",
    ]
    polling = [line for line in procs[1].logs() if line.get("event") == "worker polling"]
    assert (polling[0]["blocking"], polling[0]["pool_size"]) == ("process", 4)
