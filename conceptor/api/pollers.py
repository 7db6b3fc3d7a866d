"""The workers polling each declared queue, for the API's routes (conceptor.client.pollers)."""

from __future__ import annotations

from conceptor.client.pollers import (
    Poller,
    QueuePollers,
    all_queue_pollers,
    declared_queue_names,
    queue_pollers,
)

__all__ = ["Poller", "QueuePollers", "all_queue_pollers", "declared_queue_names", "queue_pollers"]
