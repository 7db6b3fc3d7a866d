"""Work on its own loop: a blocking stretch never stalls the activity's heartbeats."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from temporalio import activity
from temporalio.testing import ActivityEnvironment

from conceptor.activities.own_loop import on_own_loop
from conceptor.activities.waiting import heartbeating


async def test_blocking_work_does_not_stall_the_heartbeats() -> None:
    """1.5 s of blocking work (what comparing a huge realm is): the activity's own loop keeps
    heartbeating meanwhile, and the work's heartbeats reach the activity too."""
    beats: list[tuple[object, ...]] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)
    threads: list[str] = []

    async def work() -> str:
        threads.append(threading.current_thread().name)
        time.sleep(1.5)  # holds this loop, not the activity's
        activity.heartbeat("from the work")
        await asyncio.sleep(0.1)
        return f"done on attempt {activity.info().attempt}"

    async def run() -> str:
        async with heartbeating(interval=0.1, details=lambda: "alive"):
            return await on_own_loop(work)

    started = time.monotonic()
    assert await env.run(run) == "done on attempt 1"
    assert time.monotonic() - started >= 1.5
    assert threads[0].startswith("own-loop") and threads[0] != threading.current_thread().name
    assert ("from the work",) in beats
    assert beats.count(("alive",)) >= 10  # every 0.1 s while the work blocked its own loop


async def test_cancelling_the_activity_cancels_the_work() -> None:
    """A cancelled activity (its workflow gave up on it) stops its work at the next await."""
    env = ActivityEnvironment()
    reached: list[str] = []

    async def work() -> None:
        reached.append("started")
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            reached.append("cancelled")
            raise

    async def run() -> None:
        await on_own_loop(work)

    async def cancel_soon() -> None:
        while not reached:
            await asyncio.sleep(0.02)
        env.cancel()

    canceller = asyncio.create_task(cancel_soon())
    with pytest.raises(asyncio.CancelledError):
        await env.run(run)
    await canceller
    assert reached == ["started", "cancelled"]
