"""Test helpers shared by every test layer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def assert_eventually(
    check: Callable[[], Awaitable[T]],
    *,
    timeout: float = 30.0,
    interval: float = 0.2,
    message: str = "condition never held",
) -> T:
    """Await `check` until it returns without raising AssertionError, or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await check()
        except AssertionError as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"{message} within {timeout}s: {exc}") from exc
        await asyncio.sleep(interval)


def wait_until(
    check: Callable[[], bool], *, timeout: float = 30.0, interval: float = 0.2, message: str = ""
) -> None:
    """Synchronous polling for subprocess-level conditions."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(message or f"condition never held within {timeout}s")
        time.sleep(interval)
