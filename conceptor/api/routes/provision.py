"""Provisioning: start (or attach to) ProvisionWorkflow, and report where it stands."""

from __future__ import annotations

from fastapi import APIRouter, Body, status
from pydantic import BaseModel, ConfigDict

from conceptor.api.deps import AdminUser, CurrentUser, ResourcesDep, TemporalClientDep
from conceptor.api.errors import BODY_RESPONSES, ERROR_RESPONSES
from conceptor.client.provisioning import ProvisionStatus, provision_status, start_provision
from conceptor.contracts import StepName

router = APIRouter(prefix="/provision", tags=["provision"], responses=ERROR_RESPONSES)


class ProvisionRequest(BaseModel):
    """Optional: the steps to run (default: all of them)."""

    model_config = ConfigDict(extra="forbid")

    steps: list[StepName] | None = None


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
    return await provision_status(client)


@router.get("")
async def get_provisioning(
    resources: ResourcesDep, client: TemporalClientDep, _user: CurrentUser
) -> ProvisionStatus:
    """State, per-step progress and last result of the latest provisioning run."""
    return await resources.provision.read(client)
