"""Shared activity plumbing: wait for a service with backoff, heartbeat while busy."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from temporalio import activity
from temporalio.exceptions import ApplicationError

from conceptor.contracts import StepResult, WaitInput

SERVICE_UNREACHABLE = "ServiceUnreachable"
_FIRST_DELAY = 0.1
# A service that comes up is seen within half a second: Keycloak's first start is what every
# `tilt up` waits for, and a refused connection or an early 401 costs next to nothing.
_MAX_DELAY = 0.5
_PROBE_TIMEOUT = 10.0


def _deadline_left(deadline_seconds: float) -> float:
    """Seconds left of the step deadline, counted from the first scheduling (survives retries)."""
    started = activity.info().scheduled_time
    elapsed = (datetime.now(UTC) - started).total_seconds()
    return deadline_seconds - elapsed


def address_of(url: str, default_port: int) -> str:
    """host:port of a service URL, never its credentials: what messages name as the target."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or default_port}"


async def wait_for(
    service: str,
    address: str,
    probe: Callable[[], Awaitable[str]],
    wait: WaitInput,
) -> StepResult:
    """Call `probe` until it succeeds; heartbeat each attempt; fail clearly at the deadline."""
    # A retry on another worker (the first one died) keeps counting where the heartbeat left off.
    previous = activity.info().heartbeat_details
    last = previous[0] if previous and isinstance(previous[0], dict) else {}
    state: dict[str, Any] = {"attempts": int(last.get("attempts", 0)), "last_error": None}
    delay = _FIRST_DELAY
    # Heartbeats also go on during a slow probe (a black-holed port), so the heartbeat
    # timeout only fires when the worker itself is gone.
    async with heartbeating(details=lambda: dict(state)):
        while True:
            state["attempts"] += 1
            try:
                detail = await asyncio.wait_for(probe(), timeout=_PROBE_TIMEOUT)
            except Exception as exc:  # each client library raises its own types while starting
                state["last_error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                activity.heartbeat(dict(state))
                if state["attempts"] == 1 or state["attempts"] % 10 == 0:
                    activity.logger.info(
                        "waiting for %s at %s: %s", service, address, state["last_error"]
                    )
            else:
                state["last_error"] = None
                activity.heartbeat(dict(state))
                return StepResult(
                    outcome="unchanged",
                    attempts=state["attempts"],
                    detail=f"{service} ready: {detail}",
                )
            left = _deadline_left(wait.deadline_seconds)
            if left <= 0:
                n = state["attempts"]
                msg = (
                    f"{service} at {address} was not ready within the "
                    f"{wait.deadline_seconds:g}s deadline ({n} attempt{'' if n == 1 else 's'}); "
                    f"last error: {state['last_error']}"
                )
                raise ApplicationError(msg, type=SERVICE_UNREACHABLE, non_retryable=True)
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, _MAX_DELAY)


@contextlib.asynccontextmanager
async def heartbeating(
    interval: float = 1.0, *, details: Callable[[], Any] | None = None
) -> AsyncIterator[None]:
    """Heartbeat in the background, so a killed worker is noticed within the heartbeat timeout."""

    async def beat() -> None:
        while True:
            if details is None:
                activity.heartbeat()
            else:
                activity.heartbeat(details())
            await asyncio.sleep(interval)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
