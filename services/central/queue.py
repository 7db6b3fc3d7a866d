"""The `media` queue: central's workflow and activities, as `conceptor worker media` runs them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from conceptor.platform.settings import Settings
from conceptor.workers.declarations import QueueDeclaration
from services.central.contracts import MEDIA_QUEUE


def _workflows() -> Sequence[type]:
    from services.central.workflows import MediaIngestWorkflow

    return [MediaIngestWorkflow]


def _activities(settings: Settings) -> list[Callable[..., Any]]:
    from services.central.activities import media_activities

    return media_activities(settings)


# Imports are deferred into the factories so loading this module (the API, `conceptor env
# check`) never loads Pillow. Concurrency and the pool come from the environment file's entry.
MEDIA = QueueDeclaration(
    name=MEDIA_QUEUE,
    workflows=_workflows,
    activities=_activities,
    max_concurrent_activities=lambda s: s.worker_max_concurrent_activities[MEDIA_QUEUE],
    max_concurrent_workflow_tasks=lambda s: s.worker_max_concurrent_workflow_tasks[MEDIA_QUEUE],
    blocking=lambda s: s.media_pool_kind,
    pool_size=lambda s: s.media_pool_size,
    description="media ingestion: thumbnails (CPU-bound, in a pool), asset rows",
)
