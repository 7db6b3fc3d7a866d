"""Which workers poll each declared task queue, from Temporal's DescribeTaskQueue."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from conceptor.contracts import CORE_QUEUE
from conceptor.platform.environment import EnvironmentFileError
from conceptor.platform.queues import queue_names

_KINDS = {
    "workflow": TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    "activity": TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
}


class Poller(BaseModel):
    """One worker process polling the queue (workflow and/or activity tasks)."""

    identity: str
    kinds: list[str]
    last_access_time: datetime | None


class QueuePollers(BaseModel):
    """A task queue and the workers polling it."""

    name: str
    pollers: list[Poller]


async def _describe(client: Client, queue: str, kind: str) -> list[tuple[str, datetime | None]]:
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
        task_queue_type=_KINDS[kind],
    )
    resp = await client.workflow_service.describe_task_queue(request, timeout=timedelta(seconds=5))
    return [
        (
            p.identity,
            p.last_access_time.ToDatetime(tzinfo=UTC) if p.HasField("last_access_time") else None,
        )
        for p in resp.pollers
    ]


async def queue_pollers(client: Client, queue: str) -> QueuePollers:
    """Pollers of one queue, merged across workflow and activity task types."""
    results = await asyncio.gather(*(_describe(client, queue, kind) for kind in _KINDS))
    merged: dict[str, Poller] = {}
    for kind, pollers in zip(_KINDS, results, strict=True):
        for identity, seen in pollers:
            entry = merged.setdefault(
                identity, Poller(identity=identity, kinds=[], last_access_time=seen)
            )
            entry.kinds.append(kind)
            if seen is not None and (
                entry.last_access_time is None or seen > entry.last_access_time
            ):
                entry.last_access_time = seen
    return QueuePollers(name=queue, pollers=sorted(merged.values(), key=lambda p: p.identity))


def declared_queue_names() -> list[str]:
    """The environment file's queues, core first; the platform's alone if the file is refused."""
    try:
        return queue_names()
    except EnvironmentFileError:
        # A status page still answers while the file is being fixed (`env check` says why).
        return [CORE_QUEUE]


async def all_queue_pollers(client: Client) -> list[QueuePollers]:
    """Pollers of every queue the environment file declares (core first)."""
    queues = declared_queue_names()
    return list(await asyncio.gather(*(queue_pollers(client, q) for q in queues)))
