"""Single-flight: concurrent callers share the result of one in-flight call."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """While a call runs, later callers await it instead of starting their own.

    Status reads cost several Temporal calls each; under load, coalescing them keeps
    Temporal's load bounded while every answer is at most one call old.
    """

    def __init__(self) -> None:
        self._inflight: asyncio.Future[T] | None = None

    def _clear(self, done: asyncio.Future[T]) -> None:
        if self._inflight is done:
            self._inflight = None

    async def run(self, call: Callable[[], Awaitable[T]]) -> T:
        inflight = self._inflight
        if inflight is None:
            inflight = asyncio.ensure_future(call())
            inflight.add_done_callback(self._clear)
            self._inflight = inflight
        # shield: one caller going away (client disconnect) must not cancel the others' call.
        return await asyncio.shield(inflight)
