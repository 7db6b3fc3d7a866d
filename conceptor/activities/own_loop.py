"""Run an activity's work on an event loop of its own, in a thread of its own.

Comparing a realm of 50 000 users is seconds of pure Python at a time; on the worker's loop
that would stall the activity's heartbeats (the heartbeat timeout would cancel it) and every
other activity and workflow task of the worker. On its own loop it holds up nothing: the
worker's loop keeps heartbeating, and forwards the work's own heartbeats.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import dataclasses
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import temporalio.activity

T = TypeVar("T")


async def on_own_loop(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """`work()` run to its end on a new loop in a new thread; cancelling this cancels it."""
    outer = asyncio.get_running_loop()
    started: concurrent.futures.Future[asyncio.Task[T]] = concurrent.futures.Future()
    # The activity's context, but heartbeats handed to the worker's loop (which owns them):
    # the SDK only reads this context through its public functions (heartbeat, info, logger).
    context = temporalio.activity._Context.current()
    beat = context.heartbeat

    def forward(*details: Any) -> None:
        if beat is not None:
            outer.call_soon_threadsafe(lambda: beat(*details))

    inner = dataclasses.replace(context, heartbeat=forward)

    stop = threading.Event()  # cancelled before the thread got going

    def run() -> T:
        temporalio.activity._Context.set(inner)

        async def main() -> T:
            task = asyncio.current_task()
            assert task is not None
            started.set_result(task)
            if stop.is_set():
                raise asyncio.CancelledError
            return await work()

        return asyncio.run(main())

    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="own-loop")
    done = outer.run_in_executor(executor, contextvars.copy_context().run, run)
    try:
        return await asyncio.shield(done)
    except asyncio.CancelledError:
        stop.set()
        if started.done():
            task = started.result()
            task.get_loop().call_soon_threadsafe(task.cancel)
        with contextlib.suppress(BaseException):
            await done  # the work stops at its next await: nothing runs on after this returns
        raise
    finally:
        executor.shutdown(wait=False)
