"""Task-queue names: the one place workers, API, CLI and tests import them from."""

from __future__ import annotations

CORE_QUEUE = "core"
MEDIA_QUEUE = "media"
ALL_QUEUES = (CORE_QUEUE, MEDIA_QUEUE)
