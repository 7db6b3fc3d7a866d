"""wait_for: retries a probe with heartbeats, reports attempts, fails clearly at the deadline."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from conceptor.activities.waiting import wait_for
from conceptor.contracts import WaitInput


def _env(scheduled_ago: float = 0.0) -> tuple[ActivityEnvironment, list[Any]]:
    env = ActivityEnvironment()
    scheduled = datetime.now(UTC) - timedelta(seconds=scheduled_ago)
    env.info = dataclasses.replace(env.info, scheduled_time=scheduled)
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.append(details[0] if details else None)
    return env, beats


async def test_wait_for_retries_until_the_probe_succeeds() -> None:
    """Two refusals, then success: three attempts, each one heartbeated with its count."""
    outcomes: list[Exception | str] = [OSError("refused"), OSError("refused"), "15.18"]

    async def probe() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    env, beats = _env()
    result = await env.run(wait_for, "postgres", "127.0.0.1:1", probe, WaitInput())
    assert (result.outcome, result.attempts) == ("unchanged", 3)
    assert result.detail == "postgres ready: 15.18"
    counted = [b for b in beats if isinstance(b, dict)]
    assert [b["attempts"] for b in counted][-3:] == [1, 2, 3]
    assert counted[-2]["last_error"] == "OSError: refused"
    assert counted[-1]["last_error"] is None


async def test_wait_for_fails_at_the_deadline_with_service_and_address() -> None:
    """Past the deadline (counted from the first scheduling) the error is non-retryable."""

    async def probe() -> str:
        msg = "Connect call failed"
        raise ConnectionRefusedError(msg)

    env, _ = _env(scheduled_ago=10.0)  # a retry on another worker: the deadline already passed
    with pytest.raises(ApplicationError) as info:
        await env.run(wait_for, "redis", "127.0.0.1:2", probe, WaitInput(deadline_seconds=5))
    assert info.value.non_retryable
    assert info.value.type == "ServiceUnreachable"
    assert info.value.message == (
        "redis at 127.0.0.1:2 was not ready within the 5s deadline (1 attempt); "
        "last error: ConnectionRefusedError: Connect call failed"
    )
