"""The Temporal client every process shares: pydantic payloads, connect with retry."""

from __future__ import annotations

import asyncio
import time

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from conceptor.platform.logging import get_logger
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
    deadline = None if timeout is None else time.monotonic() + timeout
    attempt = 0
    while True:
        attempt += 1
        try:
            return await connect(settings, identity=identity)
        except Exception as exc:  # RuntimeError from the core SDK when the server is down
            if deadline is not None and time.monotonic() >= deadline:
                msg = f"Temporal at {settings.temporal_address} unreachable after {timeout}s: {exc}"
                raise ConnectionError(msg) from exc
            log.warning(
                "waiting for Temporal",
                address=settings.temporal_address,
                attempt=attempt,
                reason=str(exc).splitlines()[0][:200],
            )
            await asyncio.sleep(min(interval * attempt, 5.0))
