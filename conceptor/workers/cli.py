"""`conceptor worker <queue> --index <i>`: run one worker process of a declared queue."""

from __future__ import annotations

import asyncio

import typer

from conceptor.platform.settings import get_settings


def worker_command(
    queue: str = typer.Argument(
        ...,
        help="task queue to serve: one the environment file declares (see `conceptor env check`)",
    ),
    index: int = typer.Option(0, "--index", "-i", help="worker index: identity and health port"),
) -> None:
    """Run one worker of QUEUE: polls until SIGTERM, then drains in-flight activities."""
    # Deferred: importing the queues' workflows and activities is the slow part of start-up.
    from conceptor.platform.environment import EnvironmentFileError
    from conceptor.platform.queues import UnknownQueueError, declared_queue, worker_port
    from conceptor.workers.registry import DeclarationError, resolve_queue
    from conceptor.workers.runtime import run_worker

    try:
        declared_queue(queue)
    except UnknownQueueError as exc:
        raise typer.BadParameter(str(exc), param_hint="QUEUE") from None
    except EnvironmentFileError as exc:
        raise typer.BadParameter(str(exc), param_hint="QUEUE") from None
    settings = get_settings()
    try:
        worker_port(settings, queue, index)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--index") from None
    try:
        resolve_queue(queue)  # a declaration that does not load stops here, before any port opens
    except DeclarationError as exc:
        raise typer.BadParameter(str(exc), param_hint="QUEUE") from None
    raise typer.Exit(asyncio.run(run_worker(settings, queue, index)))
