"""Media: upload an image (→ MinIO → MediaIngestWorkflow), read one asset, page through all."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, File, HTTPException, Query, UploadFile, status
from pydantic import BaseModel

from conceptor.api.deps import CurrentUser, DatabaseDep, SettingsDep, TemporalClientDep
from conceptor.api.errors import BODY_RESPONSES, ERROR_RESPONSES, ErrorDetail
from conceptor.client.media import MediaAsset, get_asset, ingest_upload, list_assets

router = APIRouter(prefix="/media", tags=["media"], responses=ERROR_RESPONSES)


class MediaPage(BaseModel):
    """One page of assets, newest first; `next_offset` is null on the last page."""

    items: list[MediaAsset]
    limit: int
    offset: int
    next_offset: int | None


@router.post("", status_code=status.HTTP_202_ACCEPTED, responses=BODY_RESPONSES)
async def upload_media(
    file: Annotated[UploadFile, File(description="the image (JPEG, PNG or WebP)")],
    settings: SettingsDep,
    client: TemporalClientDep,
    db: DatabaseDep,
    _user: CurrentUser,
) -> MediaAsset:
    """Store the upload in MinIO and start its MediaIngestWorkflow; the asset starts `pending`."""
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
    return await ingest_upload(
        settings,
        client,
        filename=file.filename or "upload",
        content_type=content_type,
        data=data,
        db=db,
    )


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
