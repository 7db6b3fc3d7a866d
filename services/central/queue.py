"""The `media` queue's code: central's workflow and activities, for `conceptor worker media`.

The environment file's entry gives the rest: concurrency, the blocking pool for thumbnails,
the worker pods' resources.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from conceptor.platform.settings import Settings


class MediaQueue:
    """What the queue hosts; imports are deferred so loading this module never loads Pillow."""

    description = "media ingestion: thumbnails (CPU-bound, in a pool), asset rows"

    def workflows(self) -> Sequence[type]:
        from services.central.workflows import MediaIngestWorkflow

        return [MediaIngestWorkflow]

    def activities(self, settings: Settings) -> list[Callable[..., Any]]:
        from services.central.activities import media_activities

        return media_activities(settings)


MEDIA = MediaQueue()
