"""The one way this code retries until a deadline (tenacity): fixed or growing waits, a
stop at the deadline or as soon as the thing waited on is gone, the last error re-raised."""

from __future__ import annotations

from collections.abc import Callable

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    stop_any,
    stop_never,
    wait_fixed,
    wait_incrementing,
)
from tenacity.stop import stop_base


class _StopWhenGone(stop_base):
    """Stop retrying once `alive()` says the process being waited on has exited."""

    def __init__(self, alive: Callable[[], bool]) -> None:
        self.alive = alive

    def __call__(self, retry_state: RetryCallState) -> bool:
        return not self.alive()


def retry_until(
    timeout: float | None,
    *,
    every: float,
    on: type[BaseException] | tuple[type[BaseException], ...],
    alive: Callable[[], bool] | None = None,
    growing_to: float | None = None,
    before_sleep: Callable[[RetryCallState], None] | None = None,
) -> AsyncRetrying:
    """Retry on `on` every `every` seconds (growing by `every` up to `growing_to`, if given)
    until `timeout` (None: forever) or until `alive()` turns false; then re-raise the last."""
    stop: stop_base = stop_never if timeout is None else stop_after_delay(timeout)
    if alive is not None:
        stop = stop_any(stop, _StopWhenGone(alive))
    wait = (
        wait_fixed(every)
        if growing_to is None
        else wait_incrementing(start=every, increment=every, max=growing_to)
    )
    return AsyncRetrying(
        retry=retry_if_exception_type(on),
        wait=wait,
        stop=stop,
        reraise=True,
        before_sleep=before_sleep,
    )
