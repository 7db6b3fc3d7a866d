"""`conceptor worker <queue> --index <i>`: run one worker process of a declared queue."""

from __future__ import annotations

import asyncio

import typer

from conceptor.contracts import ALL_QUEUES
from conceptor.platform.settings import get_settings


def worker_command(
    queue: str = typer.Argument(..., help=f"task queue to serve: {', '.join(ALL_QUEUES)}"),
    index: int = typer.Option(0, "--index", "-i", help="worker index: identity and health port"),
) -> None:
    """Run one worker of QUEUE: polls until SIGTERM, then drains in-flight activities."""
    # Deferred: importing the queues' workflows and activities is the slow part of start-up.
    from conceptor.workers.declarations import QUEUES
    from conceptor.workers.runtime import run_worker

    if queue not in QUEUES:
        msg = f"unknown queue {queue!r}; known: {', '.join(sorted(QUEUES))}"
        raise typer.BadParameter(msg, param_hint="QUEUE")
    settings = get_settings()
    try:
        settings.worker_port(queue, index)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--index") from None
    raise typer.Exit(asyncio.run(run_worker(settings, queue, index)))
