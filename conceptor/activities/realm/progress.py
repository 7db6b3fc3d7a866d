"""How far a realm import has got, for its heartbeats: the phase and its counts."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Progress:
    """What the import is doing now; shown as the activity's heartbeat details in the Web UI."""

    phase: str = "starting"
    done: dict[str, int] = field(default_factory=dict)  # e.g. {"users": 3000}
    total: dict[str, int] = field(default_factory=dict)  # e.g. {"users": 50000}

    def details(self) -> dict[str, Any]:
        return {"phase": self.phase, "done": dict(self.done), "total": dict(self.total)}


_CURRENT: ContextVar[Progress | None] = ContextVar("realm_progress", default=None)


def track(progress: Progress) -> None:
    """Report into `progress` from now on, in this task and the tasks it starts."""
    _CURRENT.set(progress)


def phase(name: str, **total: int) -> None:
    """A new phase begins (its counts start at zero)."""
    progress = _CURRENT.get()
    if progress is not None:
        progress.phase, progress.done, progress.total = name, {}, dict(total)


def advance(what: str, count: int) -> None:
    """`count` more of `what` done in this phase."""
    progress = _CURRENT.get()
    if progress is not None:
        progress.done[what] = progress.done.get(what, 0) + count
