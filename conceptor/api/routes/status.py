"""The panel's summary (public, read-only): provisioning steps, workers, drift, a team card.

Public on purpose: the panel is a plain page without a login, and this summary holds
nothing a token protects (step names and states, worker identities, and what the team's
code lists for its card, environment file `api.panel_card`). Full resources (`/provision`,
`/workers`, a team's routes) need a token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import datetime
from typing import TypeVar

from fastapi import APIRouter, Response
from pydantic import BaseModel, field_validator

from conceptor.api.cache import CACHE_HEADER
from conceptor.api.deps import ResourcesDep
from conceptor.api.pollers import QueuePollers, all_queue_pollers
from conceptor.platform.logging import get_logger

router = APIRouter(prefix="/status", tags=["panel"])
log = get_logger("conceptor.api.status")
T = TypeVar("T")


class StepSummary(BaseModel):
    """One provisioning step as the panel shows it."""

    step: str
    state: str
    outcome: str | None
    attempts: int
    duration_seconds: float | None
    error: str | None
    # A reconciling step's full diff (GET /api/provision/diffs/{ref}, no token needed).
    diff_url: str | None = None
    # What the step accepted but a person should know (e.g. fields Keycloak 24+ drops).
    warnings: list[str] = []


class ProvisionSummary(BaseModel):
    """The latest provisioning run: overall state and each step."""

    state: str
    steps: list[StepSummary]
    error: str | None


class CardItem(BaseModel):
    """One item of the team's card: what its code returns (a dict or an object)."""

    id: str
    label: str
    status: str | None = None
    image_url: str | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: object) -> object:
        return value if isinstance(value, str) else str(value)  # a UUID, an int key


class PanelCard(BaseModel):
    """The card the environment file declares (`api.panel_card`); `items` null: its code
    failed (the reason is in the API's log)."""

    title: str
    empty: str
    items: list[CardItem] | None


class DriftObject(BaseModel):
    """One object whose live state differs from the files, and since when."""

    step: str
    object: str
    change: str
    fields: list[str]
    since: datetime | None


class DriftSummary(BaseModel):
    """The drift watch's latest check (`watching` false: provisioning has not registered it)."""

    watching: bool
    checked_at: datetime | None
    objects: list[DriftObject]
    data_loss: list[str]


class PanelStatus(BaseModel):
    """Each part is null when its source is unreachable; the rest still shows."""

    provision: ProvisionSummary | None
    queues: list[QueuePollers] | None
    # Null when the environment file declares no card.
    card: PanelCard | None = None
    drift: DriftSummary | None = None


async def _or_none(what: str, call: Awaitable[T]) -> T | None:
    try:
        return await call
    except Exception as exc:  # the panel shows what it can; the reason goes to the log
        log.warning("panel status part unavailable", part=what, error=str(exc)[:200])
        return None


async def _provision(resources: ResourcesDep) -> ProvisionSummary | None:
    client = resources.temporal_client()
    if client is None:
        return None
    status = await resources.provision.read(client)
    steps = [
        StepSummary(
            step=s.step,
            state=s.state,
            outcome=s.result.outcome if s.result else None,
            attempts=s.attempts,
            duration_seconds=s.duration_seconds,
            error=s.error,
            diff_url=_diff_url(s.result.diff.ref if s.result and s.result.diff else None),
            warnings=s.result.warnings if s.result else [],
        )
        for s in status.steps
    ]
    return ProvisionSummary(state=status.state, steps=steps, error=status.error)


def _diff_url(ref: str | None) -> str | None:
    return f"/api/provision/diffs/{ref}?changes_only=true" if ref else None


async def _queues(resources: ResourcesDep) -> list[QueuePollers] | None:
    client = resources.temporal_client()
    return None if client is None else await all_queue_pollers(client)


async def _card(resources: ResourcesDep) -> PanelCard | None:
    # The team's code lists the items (environment file `api.panel_card`); none declared: null.
    source = resources.panel_card
    if source is None:
        return None

    async def items() -> list[CardItem]:
        found = await source.items(resources)
        return [CardItem.model_validate(item, from_attributes=True) for item in found]

    listed = await _or_none("card", items())
    return PanelCard(title=source.title, empty=source.empty, items=listed)


async def _drift(resources: ResourcesDep) -> DriftSummary | None:
    client = resources.temporal_client()
    if client is None:
        return None
    status = await resources.drift.read(client)
    report = status.latest
    objects = [
        DriftObject(
            step=i.step,
            object=f"{i.kind}:{i.name}",
            change=i.action,
            fields=i.fields,
            since=status.since.get(i.label),
        )
        for i in (report.items if report else [])
    ]
    return DriftSummary(
        watching=status.watching,
        checked_at=report.checked_at if report else None,
        objects=objects,
        data_loss=report.data_loss if report else [],
    )


async def _compute(resources: ResourcesDep) -> PanelStatus:
    provision, queues, card, drift = await asyncio.gather(
        _or_none("provision", _provision(resources)),
        _or_none("queues", _queues(resources)),
        _card(resources),
        _or_none("drift", _drift(resources)),
    )
    return PanelStatus(provision=provision, queues=queues, card=card, drift=drift)


_CACHE_HEADERS = {
    CACHE_HEADER: {
        "description": "`hit`: served from the cache shared by every API process; `miss`: "
        "computed by this request; `off`: no cache (disabled, or Redis unreachable)",
        "schema": {"type": "string", "enum": ["hit", "miss", "off"]},
    },
    "Age": {
        "description": "seconds since the body was computed",
        "schema": {"type": "integer", "minimum": 0},
    },
}


@router.get(
    "",
    response_model=PanelStatus,
    responses={200: {"description": "the panel's summary", "headers": _CACHE_HEADERS}},
)
async def get_status(resources: ResourcesDep) -> Response:
    """Provisioning per step, pollers per queue, drift and the team's card, for the panel.

    Served from a cache every API process shares (CENTRAL_API_STATUS_CACHE_SECONDS): one
    computation per TTL across all of them; a new upload or provisioning run drops it.
    """

    async def compute() -> bytes:
        return (await _compute(resources)).model_dump_json().encode()

    cached = await resources.status_cache.get(compute)
    headers = {CACHE_HEADER: cached.state, "Age": str(cached.age_seconds)}
    return Response(content=cached.body, media_type="application/json", headers=headers)
