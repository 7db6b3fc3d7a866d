"""Provisioning: start (or attach to) ProvisionWorkflow, and report where it stands."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Query, status
from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic_core import PydanticCustomError
from redis.exceptions import RedisError

from conceptor.api.deps import AdminUser, CurrentUser, ResourcesDep, TemporalClientDep
from conceptor.api.errors import BODY_RESPONSES, ERROR_RESPONSES
from conceptor.client.diffs import read_diff
from conceptor.client.plan import DriftStatus, Plan, PlanFailedError, make_plan
from conceptor.client.provisioning import ProvisionStatus, provision_status, start_provision
from conceptor.contracts import Diff
from conceptor.platform.diff_store import DiffStore
from conceptor.stack_graph import step_names

router = APIRouter(prefix="/provision", tags=["provision"], responses=ERROR_RESPONSES)


def _known_step(name: str) -> str:
    """A step of the provisioning graph the environment file implies, refused as a literal."""
    known = step_names()
    if name not in known:
        expected = ", ".join(repr(k) for k in known)
        raise PydanticCustomError(
            "literal_error", "Input should be {expected}", {"expected": expected}
        )
    return name


class ProvisionRequest(BaseModel):
    """Optional: the steps to run (default: all of them)."""

    model_config = ConfigDict(extra="forbid")

    steps: list[Annotated[str, AfterValidator(_known_step)]] | None = None


@router.post("", status_code=status.HTTP_202_ACCEPTED, responses=BODY_RESPONSES)
async def start_provisioning(
    resources: ResourcesDep,
    client: TemporalClientDep,
    _admin: AdminUser,
    request: ProvisionRequest | None = Body(default=None),
) -> ProvisionStatus:
    """Start ProvisionWorkflow, or attach to the run in progress (role platform-admin)."""
    steps = request.steps if request is not None else None
    # An empty list would mean "run nothing"; treat it like no selection at all.
    await start_provision(client, steps=list(steps) if steps else None)
    resources.provision.forget()
    await resources.status_cache.invalidate()  # the panel shows the new run at once
    return await provision_status(client)


@router.get("")
async def get_provisioning(
    resources: ResourcesDep, client: TemporalClientDep, _user: CurrentUser
) -> ProvisionStatus:
    """State, per-step progress and last result of the latest provisioning run."""
    return await resources.provision.read(client)


# A plan waits for every service and reads the whole live state: bounded, never forever.
PLAN_TIMEOUT_SECONDS = 120.0


@router.get(
    "/plan",
    responses={503: {"description": "the plan could not be computed (the reason is given)"}},
)
async def get_plan(client: TemporalClientDep, _admin: AdminUser) -> Plan:
    """What provisioning would change, against the live state, with no write (platform-admin).

    The same as `conceptor provision --plan`; the digests let `--apply` refuse a stale plan.
    """
    try:
        return await asyncio.wait_for(make_plan(client), timeout=PLAN_TIMEOUT_SECONDS)
    except PlanFailedError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from exc
    except TimeoutError as exc:
        detail = f"no plan within {PLAN_TIMEOUT_SECONDS:g}s; the run goes on in Temporal"
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=detail) from exc


@router.get("/drift")
async def get_drift(
    resources: ResourcesDep, client: TemporalClientDep, _user: CurrentUser
) -> DriftStatus:
    """The drift watch's latest check: which objects differ from the files, and since when."""
    return await resources.drift.read(client)


@router.get(
    "/diffs/{ref}",
    responses={404: {"description": "no diff under this reference (unknown, or expired)"}},
)
async def get_diff(
    ref: str,
    resources: ResourcesDep,
    changes_only: bool = Query(False, description="leave the unchanged objects out"),
) -> Diff:
    """A step's full diff, by the reference its result names (`diff.ref`).

    A step's result lists at most 50 changes; this is all of them. No token is needed, like
    the panel's drift table, which shows the same object names: the panel links here, and
    the reference is a content hash nobody can guess.
    """
    store = DiffStore(resources.redis, retention_seconds=resources.settings.diff_retention_seconds)
    try:
        diff = await read_diff(store, ref, changes_only=changes_only)
    except RedisError as exc:
        detail = f"Redis, where the diffs are kept, is unavailable: {exc}"
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=detail) from exc
    if diff is None:
        detail = (
            f"no diff under {ref!r}: unknown, or older than the retention "
            f"(CENTRAL_DIFF_RETENTION_SECONDS={resources.settings.diff_retention_seconds:g})"
        )
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=detail)
    return diff
