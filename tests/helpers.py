"""Test helpers shared by every test layer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
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


def step_name(activity_name: str, target: str | None) -> str:
    """The step an activity runs for: the plain name, or `<activity>:<target>` (fakes are
    registered once per activity and tell its steps apart by their target)."""
    return activity_name if target is None else f"{activity_name}:{target}"


def activity_names(steps: Iterable[str]) -> list[str]:
    """The activities steps named `<activity>` or `<activity>:<target>` run, each once."""
    return list(dict.fromkeys(s.partition(":")[0] for s in steps))
