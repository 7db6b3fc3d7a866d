"""Snapshots: list them (read-only, public like the panel's status), save, restore, delete.

Listing reads the manifests the snapshot workflows publish in the snapshot bucket (no workflow
per read); saving, restoring and deleting start the snapshot workflows by name and wait.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from botocore.exceptions import ClientError
from fastapi import APIRouter, Body, HTTPException, Path, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from conceptor.api.deps import AdminUser, SettingsDep, TemporalClientDep
from conceptor.api.errors import BODY_RESPONSES, ERROR_RESPONSES, ErrorDetail
from conceptor.client import snapshots
from conceptor.platform.s3 import s3_client
from conceptor.snapshot_contracts import (
    NAME_PATTERN,
    SNAPSHOT_BUCKET,
    SNAPSHOT_NEWER_SCHEMA,
    SNAPSHOT_NOT_FOUND,
    RestoreResult,
    SnapshotList,
    SnapshotManifest,
    check_name,
)

router = APIRouter(prefix="/snapshots", tags=["snapshots"], responses=ERROR_RESPONSES)
NameParam = Annotated[str, Path(pattern=NAME_PATTERN.pattern, description="a snapshot's name")]
_REFUSALS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorDetail, "description": "no snapshot of this name"},
    409: {
        "model": ErrorDetail,
        "description": "refused: the name is taken, or the snapshot "
        "holds migrations this checkout lacks",
    },
}


class SaveRequest(BaseModel):
    """The new snapshot's name."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(json_schema_extra={"pattern": NAME_PATTERN.pattern})

    @field_validator("name")
    @classmethod
    def _valid(cls, name: str) -> str:
        return check_name(name)  # a ValueError is a 422 naming what a name may be


def _http(exc: snapshots.SnapshotFailed) -> HTTPException:
    """A refusal is the client's to fix (404, 409); anything else is a failed dependency."""
    if exc.kind == SNAPSHOT_NOT_FOUND:
        return HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc))
    if exc.kind in {SNAPSHOT_NEWER_SCHEMA, "SnapshotRefused"}:
        return HTTPException(status.HTTP_409_CONFLICT, detail=str(exc))
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc))


@router.get("")
async def list_snapshots(settings: SettingsDep) -> SnapshotList:
    """Every snapshot saved on this environment, oldest first (no token: the panel shows it)."""
    manifests: list[SnapshotManifest] = []
    async with s3_client(settings) as s3:
        try:
            paginator = s3.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=SNAPSHOT_BUCKET, Delimiter="/"):
                for prefix in page.get("CommonPrefixes", []):
                    manifests.extend(await _manifest(s3, prefix["Prefix"] + "manifest.json"))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchBucket":
                raise
    return SnapshotList(snapshots=sorted(manifests, key=lambda m: m.created_at))


async def _manifest(s3: Any, key: str) -> list[SnapshotManifest]:
    try:
        body = await (await s3.get_object(Bucket=SNAPSHOT_BUCKET, Key=key))["Body"].read()
        return [SnapshotManifest.model_validate(json.loads(body))]
    except (ClientError, ValidationError, ValueError):
        return []  # a snapshot being saved has no manifest yet


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={**BODY_RESPONSES, **_REFUSALS},
)
async def save_snapshot(
    client: TemporalClientDep, _admin: AdminUser, request: SaveRequest = Body(...)
) -> SnapshotManifest:
    """Save every declared database, bucket and realm (role platform-admin)."""
    try:
        return await snapshots.save(client, request.name)
    except snapshots.SnapshotFailed as exc:
        raise _http(exc) from None


@router.post("/{name}/restore", responses=_REFUSALS)
async def restore_snapshot(
    name: NameParam, client: TemporalClientDep, _admin: AdminUser
) -> RestoreResult:
    """Make every service equal to the snapshot, then apply the migrations it predates."""
    try:
        return await snapshots.restore(client, name)
    except snapshots.SnapshotFailed as exc:
        raise _http(exc) from None


class Deleted(BaseModel):
    name: str
    bytes_freed: int


@router.delete("/{name}", responses=_REFUSALS)
async def delete_snapshot(name: NameParam, client: TemporalClientDep, _admin: AdminUser) -> Deleted:
    """Delete the snapshot's database copies, objects and files (role platform-admin)."""
    try:
        return Deleted(name=name, bytes_freed=await snapshots.delete(client, name))
    except snapshots.SnapshotFailed as exc:
        raise _http(exc) from None
