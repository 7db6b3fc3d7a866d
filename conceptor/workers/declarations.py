"""Task-queue declarations: what each queue hosts and how its worker processes run it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from conceptor.contracts import CORE_QUEUE
from conceptor.platform.settings import Settings

Blocking = Literal["thread", "process"]


@dataclass(frozen=True)
class QueueDeclaration:
    """A queue as data: the runtime turns it into one `temporalio` Worker per process.

    `blocking` says where the queue's non-async (CPU-bound) activities run: a thread or
    process pool of `pool_size(settings)` workers; None means the queue has none.
    """

    name: str
    workflows: Callable[[], Sequence[type]]
    activities: Callable[[Settings], list[Callable[..., Any]]]
    max_concurrent_activities: Callable[[Settings], int]
    max_concurrent_workflow_tasks: Callable[[Settings], int]
    blocking: Callable[[Settings], Blocking | None] = lambda _s: None
    pool_size: Callable[[Settings], int] = lambda _s: 0
    description: str = ""


def _core_workflows() -> Sequence[type]:
    from conceptor.workflows.drift import DRIFT_WORKFLOWS
    from conceptor.workflows.provision import PROVISIONING_WORKFLOWS
    from conceptor.workflows.snapshot import SNAPSHOT_WORKFLOW_CLASSES

    return [*PROVISIONING_WORKFLOWS, *DRIFT_WORKFLOWS, *SNAPSHOT_WORKFLOW_CLASSES]


def _core_activities(settings: Settings) -> list[Callable[..., Any]]:
    from conceptor.activities.notify import notify_activities
    from conceptor.activities.provisioning import provisioning_activities
    from conceptor.activities.snapshot.activities import snapshot_activities

    return [
        *provisioning_activities(settings),
        *notify_activities(settings),
        *snapshot_activities(settings),
    ]


# Imports are deferred into the factories: declaring a queue costs nothing until a process
# actually runs it.
CORE = QueueDeclaration(
    name=CORE_QUEUE,
    workflows=_core_workflows,
    activities=_core_activities,
    # The environment file's `concurrency:` replaces these when the queue runs from it.
    max_concurrent_activities=lambda s: s.worker_max_concurrent_activities.get(CORE_QUEUE, 50),
    max_concurrent_workflow_tasks=lambda s: s.worker_max_concurrent_workflow_tasks.get(
        CORE_QUEUE, 20
    ),
    description="environment provisioning, snapshots and notifications",
)
# The platform's queue by name; _dev-env/environment.yaml names CORE by import path, and a
# team's queues by theirs.
QUEUES: dict[str, QueueDeclaration] = {CORE.name: CORE}


def get_queue(name: str) -> QueueDeclaration:
    """The declaration of queue `name`, or a KeyError that lists the known queues."""
    try:
        return QUEUES[name]
    except KeyError:
        msg = f"unknown queue {name!r}; known: {', '.join(sorted(QUEUES))}"
        raise KeyError(msg) from None
