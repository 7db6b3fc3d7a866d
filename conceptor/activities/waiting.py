"""Shared activity plumbing: wait for a service with backoff, heartbeat while busy."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from conceptor.workflows.provision_models import StepResult, WaitInput

SERVICE_UNREACHABLE = "ServiceUnreachable"
_FIRST_DELAY = 0.1
_MAX_DELAY = 2.0


def _deadline_left(deadline_seconds: float) -> float:
    """Seconds left of the step deadline, counted from the first scheduling (survives retries)."""
    started = activity.info().scheduled_time
    elapsed = (datetime.now(UTC) - started).total_seconds()
    return deadline_seconds - elapsed


async def wait_for(
    service: str,
    address: str,
    probe: Callable[[], Awaitable[str]],
    wait: WaitInput,
) -> StepResult:
    """Call `probe` until it succeeds; heartbeat each attempt; fail clearly at the deadline."""
    # A retry on another worker (the first one died) keeps counting where the heartbeat left off.
    previous = activity.info().heartbeat_details
    attempt = (
        int(previous[0].get("attempts", 0)) if previous and isinstance(previous[0], dict) else 0
    )
    delay = _FIRST_DELAY
    last_error = ""
    while True:
        attempt += 1
        try:
            detail = await probe()
        except Exception as exc:  # every client library raises its own types while a server starts
            last_error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            activity.heartbeat({"attempts": attempt, "last_error": last_error})
            if attempt == 1 or attempt % 10 == 0:
                activity.logger.info("waiting for %s at %s: %s", service, address, last_error)
        else:
            activity.heartbeat({"attempts": attempt, "last_error": None})
            return StepResult(
                outcome="unchanged", attempts=attempt, detail=f"{service} ready: {detail}"
            )
        left = _deadline_left(wait.deadline_seconds)
        if left <= 0:
            msg = (
                f"{service} at {address} was not ready within the {wait.deadline_seconds:g}s "
                f"deadline ({attempt} attempts); last error: {last_error}"
            )
            raise ApplicationError(msg, type=SERVICE_UNREACHABLE, non_retryable=True)
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 2, _MAX_DELAY)


@contextlib.asynccontextmanager
async def heartbeating(interval: float = 1.0) -> AsyncIterator[None]:
    """Heartbeat in the background, so a killed worker is noticed within the heartbeat timeout."""

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(interval)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
