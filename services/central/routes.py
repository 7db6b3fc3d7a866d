"""Media: upload an image (→ MinIO → MediaIngestWorkflow), read one asset, page through all."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, File, Header, HTTPException, Query, Response, UploadFile, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.exceptions import RedisError

from conceptor.api.auth import User
from conceptor.api.deps import (
    CurrentUser,
    DatabaseDep,
    Resources,
    ResourcesDep,
    SettingsDep,
    TemporalClientDep,
)
from conceptor.api.errors import BODY_RESPONSES, ERROR_RESPONSES, ErrorDetail
from conceptor.api.idempotency import (
    HEADER,
    KEY_FORMAT_TEXT,
    REPLAY_HEADER,
    IdempotencyStore,
    StoredResponse,
    fingerprint,
    validate_key,
)
from conceptor.api.ratelimit import RateLimitedError, RateLimiter
from conceptor.platform.logging import get_logger
from services.central.client import MediaAsset, get_asset, ingest_upload, list_assets

router = APIRouter(prefix="/media", tags=["media"], responses=ERROR_RESPONSES)
log = get_logger("central.api.media")


class MediaPage(BaseModel):
    """One page of assets, newest first; `next_offset` is null on the last page."""

    items: list[MediaAsset]
    limit: int
    offset: int
    next_offset: int | None


class RateLimited(BaseModel):
    """Over the upload rate limit: which limit, and when to retry."""

    detail: str
    limit: int
    window_seconds: float
    retry_after_seconds: int


class UploadRefused(BaseModel):
    """422: a reason (empty file, reused key), or the list of invalid fields."""

    detail: str | list[dict[str, Any]]


_RETRY_AFTER = {
    "Retry-After": {
        "description": "whole seconds to wait before retrying",
        "schema": {"type": "integer", "minimum": 1},
    }
}
UPLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "the asset, `pending` (a replay of a key's first answer says so)",
        "headers": {
            REPLAY_HEADER: {
                "description": f"`true`: the stored answer to this {HEADER}, no new asset",
                "schema": {"type": "string", "enum": ["true", "false"]},
            }
        },
    },
    400: {
        "model": ErrorDetail,
        "description": f"a malformed body, or an {HEADER} header that is not a valid key",
    },
    409: {
        "model": ErrorDetail,
        "description": f"the first request with this {HEADER} is still running",
        "headers": _RETRY_AFTER,
    },
    422: {
        "model": UploadRefused,
        "description": f"a missing field, an empty file, or an {HEADER} already used with "
        "another body",
    },
    429: {
        "model": RateLimited,
        "description": "over the per-user upload rate limit",
        "headers": _RETRY_AFTER,
    },
    503: {
        "model": ErrorDetail,
        "description": "a dependency (Temporal, Keycloak, PostgreSQL, MinIO, Redis) is unreachable",
    },
}


@dataclass(frozen=True)
class SharedState:
    """This service's part of the API's shared cache layer in Redis, one per API process."""

    upload_limit: RateLimiter
    idempotency: IdempotencyStore


def shared_state(resources: Resources) -> SharedState:
    """The process's limiter and idempotency store, made on first use from its Redis client."""
    found = resources.extensions.get(__name__)
    if found is None:
        s = resources.settings
        found = SharedState(
            upload_limit=RateLimiter(
                resources.redis,
                name="upload",
                limit=s.api_upload_rate_limit,
                window_seconds=s.api_upload_rate_window_seconds,
            ),
            idempotency=IdempotencyStore(
                resources.redis,
                name="media",
                ttl_seconds=s.api_idempotency_ttl_seconds,
                lock_seconds=s.api_idempotency_lock_seconds,
                wait_seconds=s.api_idempotency_wait_seconds,
            ),
        )
        resources.extensions[__name__] = found
    return found


async def _admit(resources: Resources, user: User) -> None:
    """Count the upload against the user's limit, shared by every API process (or 429)."""
    decision = await shared_state(resources).upload_limit.hit(user.subject)
    if not decision.allowed:
        setting = "CENTRAL_API_UPLOAD_RATE_LIMIT / CENTRAL_API_UPLOAD_RATE_WINDOW_SECONDS"
        raise RateLimitedError("upload", decision, setting)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=MediaAsset,
    responses={**BODY_RESPONSES, **UPLOAD_RESPONSES},
)
async def upload_media(
    file: Annotated[UploadFile, File(description="the image (JPEG, PNG or WebP)")],
    resources: ResourcesDep,
    client: TemporalClientDep,
    db: DatabaseDep,
    user: CurrentUser,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=HEADER,
            description=f"makes retries safe: a retry with the same key and body gets the "
            f"first answer, not a second asset ({KEY_FORMAT_TEXT}; kept per user)",
        ),
    ] = None,
) -> MediaAsset | JSONResponse:
    """Store the upload in MinIO and start its MediaIngestWorkflow; the asset starts `pending`.

    Uploads per user are limited across every API process (429 with Retry-After). With an
    `Idempotency-Key`, a retry returns the first asset instead of creating another.
    """
    settings = resources.settings
    key = validate_key(idempotency_key) if idempotency_key is not None else None
    content_type = (file.content_type or "").split(";", 1)[0].strip().lower()
    if content_type not in settings.api_upload_content_types:
        allowed = ", ".join(settings.api_upload_content_types)
        raise HTTPException(
            status_code=status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail=f"unsupported file type {content_type or '(none)'!r}: upload one of {allowed}",
        )
    # The body limit middleware has already bounded what was spooled, so this read is bounded.
    data = await file.read()
    if not data:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="the file is empty")
    filename = file.filename or "upload"

    async def create() -> MediaAsset:
        await _admit(resources, user)
        asset = await ingest_upload(
            settings, client, filename=filename, content_type=content_type, data=data, db=db
        )
        await resources.status_cache.invalidate()  # the panel lists recent uploads
        return asset

    if key is None:
        return await create()
    store = shared_state(resources).idempotency
    started = await store.begin(user.subject, key, fingerprint(filename, content_type, data))
    if isinstance(started, StoredResponse):
        return JSONResponse(
            started.body, status_code=started.status_code, headers={REPLAY_HEADER: "true"}
        )
    try:
        asset = await create()
    except BaseException:
        # Not kept (429, a dependency down, a cancelled request): a retry runs afresh.
        with contextlib.suppress(RedisError):
            await store.release(started)
        raise
    answer = StoredResponse(status.HTTP_202_ACCEPTED, asset.model_dump(mode="json"))
    try:
        kept = await store.complete(started, answer)
    except RedisError as exc:
        kept = False
        log.warning("idempotent answer not stored", key=key, error=str(exc)[:200])
    if not kept:
        # The claim expired first (CENTRAL_API_IDEMPOTENCY_LOCK_SECONDS too short) or Redis
        # failed: the asset exists all the same, so answer with it rather than an error.
        log.warning("idempotency claim lost before the answer was stored", key=key)
    response.headers[REPLAY_HEADER] = "false"
    return asset


@router.get("/{asset_id}", responses={404: {"model": ErrorDetail, "description": "no such asset"}})
async def get_media(
    asset_id: uuid.UUID, settings: SettingsDep, db: DatabaseDep, _user: CurrentUser
) -> MediaAsset:
    """One asset: its status and, once `ready`, its thumbnail URLs."""
    asset = await get_asset(settings, asset_id, db=db)
    if asset is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"media asset {asset_id} not found")
    return asset


@router.get("")
async def list_media(
    settings: SettingsDep,
    db: DatabaseDep,
    _user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> MediaPage:
    """Assets, newest first, `limit` per page from `offset`."""
    # One extra row tells whether another page exists without a COUNT(*).
    rows = await list_assets(settings, limit=limit + 1, offset=offset, db=db)
    more = len(rows) > limit
    return MediaPage(
        items=rows[:limit], limit=limit, offset=offset, next_offset=offset + limit if more else None
    )


RECENT_MEDIA = 12


async def recent_media(resources: Resources) -> list[dict[str, Any]]:
    """The panel card's items (environment file `api.panel_card`): the recent uploads, each
    with its name, status and smallest thumbnail (once ready)."""
    assets = await list_assets(resources.settings, limit=RECENT_MEDIA, db=resources.db)
    return [
        {
            "id": str(a.id),
            "label": a.filename,
            "status": a.status,
            "image_url": a.thumbnail_urls[min(a.thumbnail_urls)] if a.thumbnail_urls else None,
        }
        for a in assets
    ]
