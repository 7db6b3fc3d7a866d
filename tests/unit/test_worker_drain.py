"""The worker's drain: clean when the SDK finishes, bounded when an activity ignores its cancel."""

from __future__ import annotations

import asyncio
import time

import pytest

from conceptor.workers import runtime
from conceptor.workers.health import WorkerHealth


class StubWorker:
    """Polls until shut down; `stuck` makes shutdown wait for ever (an activity that ignores
    its cancellation keeps the SDK's shutdown from completing)."""

    def __init__(self, *, stuck: bool) -> None:
        self.is_running = False
        self._stuck = stuck
        self._stopped = asyncio.Event()

    async def run(self) -> None:
        self.is_running = True
        await self._stopped.wait()

    async def shutdown(self) -> None:
        if self._stuck:
            await asyncio.Event().wait()
        self._stopped.set()


class StubPool:
    kind = "thread"
    size = 1

    def __init__(self) -> None:
        self.abandoned = False

    def abandon(self) -> None:
        self.abandoned = True


async def _drain(worker: StubWorker, pool: StubPool) -> tuple[int, float, WorkerHealth]:
    health = WorkerHealth(queue="media", index=0, identity="worker-media-0@h")
    stop = asyncio.Event()
    stop_task = asyncio.create_task(stop.wait())
    serving = asyncio.create_task(
        runtime._serve(worker, health, stop_task, pool, grace=0.3)  # type: ignore[arg-type]
    )
    while health.state != "polling":
        await asyncio.sleep(0.01)
    started = time.monotonic()
    stop.set()
    code = await asyncio.wait_for(serving, timeout=5)
    return code, time.monotonic() - started, health


async def test_drain_returns_0_once_the_sdk_is_done() -> None:
    """Nothing stuck: exit code 0 at once, the pool is waited for."""
    pool = StubPool()
    code, seconds, health = await _drain(StubWorker(stuck=False), pool)
    assert (code, pool.abandoned, health.state) == (0, False, "draining")
    assert seconds < 0.3


async def test_drain_gives_up_after_grace_and_cancel_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A shutdown that never completes: exit 1 after grace + cancel window, pool abandoned."""
    monkeypatch.setattr(runtime, "CANCEL_WINDOW_SECONDS", 0.2)
    pool = StubPool()
    code, seconds, _health = await _drain(StubWorker(stuck=True), pool)
    assert (code, pool.abandoned) == (1, True)
    assert 0.5 <= seconds < 1.5


def test_cancel_window_fits_the_pods_drain_margin() -> None:
    """The process outlives the grace period by less than a pod is given beyond it."""
    from conceptor.commands.k8s_manifests import DRAIN_MARGIN_SECONDS

    assert runtime.CANCEL_WINDOW_SECONDS < DRAIN_MARGIN_SECONDS
