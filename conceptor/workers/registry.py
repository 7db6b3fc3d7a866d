"""The queue a worker serves, as the environment file declares it: its code, concurrency, pool."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from conceptor.platform.environment import QUEUE_ENTRY_POINTS, Queue
from conceptor.platform.imports import TargetAttributeError, import_target
from conceptor.platform.queues import declared_queue
from conceptor.platform.settings import Settings
from conceptor.workers.declarations import Blocking, QueueDeclaration


class DeclarationError(RuntimeError):
    """A queue's declaration does not load (the module, the attribute or the entry point)."""


def load_declaration(queue: Queue, file: Path | None = None) -> Any:
    """The object the queue's `declaration` (module:attribute) or `entry_point` names."""
    if queue.entry_point is not None:
        found = list(entry_points(group=QUEUE_ENTRY_POINTS, name=queue.entry_point))
        if not found:
            msg = (
                f"queue {queue.name!r}: no installed package publishes entry point "
                f"{queue.entry_point!r} in group {QUEUE_ENTRY_POINTS}"
            )
            raise DeclarationError(msg)
        return found[0].load()
    assert queue.declaration is not None  # the model requires one of the two
    module_name = queue.declaration.partition(":")[0]
    try:
        return import_target(queue.declaration, file)
    except TargetAttributeError as exc:
        msg = f"queue {queue.name!r}: {exc}"
        raise DeclarationError(msg) from exc
    except ImportError as exc:
        msg = f"queue {queue.name!r}: importing {module_name} failed: {exc}"
        raise DeclarationError(msg) from exc


def _override(settings: Settings, field: str, queue: str) -> Any:
    # A per-queue CENTRAL_ setting (a dict keyed by queue) given for one run, in the environment
    # or .env.development, wins over the file for the queues it names.
    values: dict[str, Any] = getattr(settings, field)
    return values.get(queue)


def queue_declaration(queue: Queue, code: Any) -> QueueDeclaration:
    """The runtime's declaration: the code's workflows and activities, the file's settings."""
    name = queue.name

    def activities(settings: Settings) -> int:
        found = _override(settings, "worker_max_concurrent_activities", name)
        return int(found) if found is not None else queue.concurrency.activities

    def workflow_tasks(settings: Settings) -> int:
        found = _override(settings, "worker_max_concurrent_workflow_tasks", name)
        return int(found) if found is not None else queue.concurrency.workflow_tasks

    def blocking(settings: Settings) -> Blocking | None:
        kind = _override(settings, "worker_pool_kind", name)
        if kind is not None:
            return kind  # type: ignore[no-any-return]
        return queue.blocking.kind if queue.blocking else None

    def pool_size(settings: Settings) -> int:
        size = _override(settings, "worker_pool_size", name)
        if size is not None:
            return int(size)
        return queue.blocking.pool_size if queue.blocking else 0

    return QueueDeclaration(
        name=name,
        workflows=code.workflows,
        activities=code.activities,
        max_concurrent_activities=activities,
        max_concurrent_workflow_tasks=workflow_tasks,
        blocking=blocking,
        pool_size=pool_size,
        description=queue.description or str(getattr(code, "description", "")),
    )


def resolve_queue(name: str, file: Path | None = None) -> QueueDeclaration:
    """Queue `name` of the environment file, ready to run (UnknownQueueError if undeclared)."""
    queue = declared_queue(name, file)
    return queue_declaration(queue, load_declaration(queue, file))
