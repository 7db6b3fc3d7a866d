"""The workers polling each application task queue."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from conceptor.api.deps import CurrentUser, TemporalClientDep
from conceptor.api.errors import ERROR_RESPONSES
from conceptor.api.pollers import QueuePollers, all_queue_pollers

router = APIRouter(prefix="/workers", tags=["workers"], responses=ERROR_RESPONSES)


class Workers(BaseModel):
    """Every application queue with its pollers."""

    queues: list[QueuePollers]


@router.get("")
async def list_workers(client: TemporalClientDep, _user: CurrentUser) -> Workers:
    """Pollers of every queue the environment file declares, as DescribeTaskQueue has them."""
    return Workers(queues=await all_queue_pollers(client))
