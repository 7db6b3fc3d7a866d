"""The one retry helper: retries what it is told to, stops at the deadline or when gone."""

from __future__ import annotations

import time

import pytest

from conceptor.platform.retrying import retry_until


async def test_retries_until_it_succeeds() -> None:
    calls = 0
    async for attempt in retry_until(5, every=0.01, on=OSError):
        with attempt:
            calls += 1
            if calls < 3:
                raise OSError("not yet")
    assert calls == 3


async def test_reraises_the_last_error_at_the_deadline() -> None:
    started = time.monotonic()
    with pytest.raises(OSError, match="still down"):
        async for attempt in retry_until(0.2, every=0.05, on=OSError):
            with attempt:
                raise OSError("still down")
    assert 0.2 <= time.monotonic() - started < 2


async def test_other_errors_are_not_retried() -> None:
    calls = 0
    with pytest.raises(ValueError):
        async for attempt in retry_until(5, every=0.01, on=OSError):
            with attempt:
                calls += 1
                raise ValueError("a bug, not a wait")
    assert calls == 1


async def test_stops_as_soon_as_the_waited_on_process_is_gone() -> None:
    calls: list[int] = []

    def alive() -> bool:
        return len(calls) < 2

    with pytest.raises(OSError):
        async for attempt in retry_until(30, every=0.01, on=OSError, alive=alive):
            with attempt:
                calls.append(1)
                raise OSError("down")
    assert len(calls) == 2
