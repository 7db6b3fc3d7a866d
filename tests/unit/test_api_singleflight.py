"""SingleFlight: concurrent callers share one call; later callers start a new one."""

from __future__ import annotations

import asyncio

import pytest

from conceptor.api.singleflight import SingleFlight


async def test_concurrent_callers_share_one_call() -> None:
    """Ten callers while one call runs: the call runs once, all get its result."""
    flight: SingleFlight[int] = SingleFlight()
    calls = 0
    release = asyncio.Event()

    async def call() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return calls

    waiters = [asyncio.create_task(flight.run(call)) for _ in range(10)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiters) == [1] * 10
    assert calls == 1


async def test_call_after_completion_runs_again() -> None:
    """Once a call finished, the next caller gets a fresh one."""
    flight: SingleFlight[int] = SingleFlight()
    counter = iter(range(100))

    async def call() -> int:
        return next(counter)

    assert [await flight.run(call), await flight.run(call)] == [0, 1]


async def test_failure_reaches_every_waiter_and_is_not_cached() -> None:
    """A failing call raises in each waiter; the next call starts afresh."""
    flight: SingleFlight[str] = SingleFlight()
    attempts = 0

    async def call() -> str:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0)
        if attempts == 1:
            raise ConnectionError("temporal down")
        return "ok"

    results = await asyncio.gather(flight.run(call), flight.run(call), return_exceptions=True)
    assert [str(r) for r in results] == ["temporal down", "temporal down"]
    assert await flight.run(call) == "ok"


async def test_cancelled_waiter_does_not_cancel_the_shared_call() -> None:
    """A client going away leaves the call running for the others."""
    flight: SingleFlight[str] = SingleFlight()
    release = asyncio.Event()

    async def call() -> str:
        await release.wait()
        return "done"

    first = asyncio.create_task(flight.run(call))
    second = asyncio.create_task(flight.run(call))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    release.set()
    assert await second == "done"
