"""The Temporal client every process shares: pydantic payloads, connect with retry."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from tenacity import RetryCallState

from conceptor.platform.logging import get_logger
from conceptor.platform.retrying import retry_until
from conceptor.platform.settings import Settings

log = get_logger("conceptor.temporal")


async def connect(settings: Settings, *, identity: str | None = None) -> Client:
    """Connect once (raises if Temporal is not reachable)."""
    if identity is None:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=pydantic_data_converter,
        )
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        identity=identity,
    )


async def connect_with_retry(
    settings: Settings,
    *,
    identity: str | None = None,
    timeout: float | None = None,
    interval: float = 1.0,
) -> Client:
    """Connect, waiting (and saying so) while Temporal is unreachable; timeout=None waits on."""

    def say_waiting(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "waiting for Temporal",
            address=settings.temporal_address,
            attempt=state.attempt_number,
            reason=str(exc).splitlines()[0][:200] if exc else "",
        )

    # RuntimeError from the core SDK when the server is down; anything else alike.
    retrying = retry_until(
        timeout, every=interval, growing_to=5.0, on=Exception, before_sleep=say_waiting
    )
    try:
        async for attempt in retrying:
            with attempt:
                return await connect(settings, identity=identity)
    except Exception as exc:
        msg = f"Temporal at {settings.temporal_address} unreachable after {timeout}s: {exc}"
        raise ConnectionError(msg) from exc
    raise AssertionError("unreachable: tenacity either returns or raises")
