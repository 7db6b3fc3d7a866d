"""What a local dev service is: ports, how to prepare and run it, and what 'ready' means."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from conceptor.platform.settings import Settings


class NotReadyError(Exception):
    """The service answered, but not yet as a ready service does (or not at all)."""


Prepare = Callable[[Settings, Path], None]
Command = Callable[[Settings, Path], list[str]]
Environ = Callable[[Settings, Path], dict[str, str]]
Probe = Callable[[Settings], Awaitable[str]]
PostStart = Callable[[Settings], Awaitable[None]]


def _no_prepare(_settings: Settings, data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)


def _no_env(_settings: Settings, _data_dir: Path) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class DevService:
    """One infrastructure service run as a local process by `conceptor dev serve`."""

    name: str
    description: str
    ports: tuple[str, ...]
    command: Command
    probe: Probe
    prepare: Prepare = _no_prepare
    environ: Environ = _no_env
    post_start: PostStart | None = None
    # Run the server as this system user when started as root (initdb refuses root).
    run_as: str | None = None
    # How long a first start may take before `serve` gives up waiting for readiness.
    start_timeout: float = 60.0
    stop_timeout: float = 15.0
    links: dict[str, str] = field(default_factory=dict)
