"""`conceptor workers`: every queue the environment file declares, its ports and its pollers."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer

from conceptor.platform.settings import get_settings


def workers_command(
    as_json: bool = typer.Option(False, "--json", help="one JSON object"),
) -> None:
    """List each declared queue: default workers, health ports, and the workers polling it."""
    from conceptor.client.pollers import all_queue_pollers
    from conceptor.platform.environment import EnvironmentFileError
    from conceptor.platform.queues import declared_queues, worker_port
    from conceptor.platform.temporal import connect

    settings = get_settings()
    try:
        queues = declared_queues()
    except EnvironmentFileError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None

    async def pollers() -> dict[str, list[dict[str, Any]]]:
        client = await asyncio.wait_for(connect(settings), timeout=10)
        found = await all_queue_pollers(client)
        return {q.name: [p.model_dump(mode="json") for p in q.pollers] for q in found}

    try:
        polling: dict[str, list[dict[str, Any]]] | None = asyncio.run(pollers())
        error = None
    except Exception as exc:  # Temporal down: still list what the file declares
        polling, error = None, f"Temporal at {settings.temporal_address} unreachable: {exc!r}"
    rows: list[dict[str, Any]] = [
        {
            "name": q.name,
            "workers": q.workers,
            "ports": f"{worker_port(settings, q.name, 0)}-{worker_port(settings, q.name, 19)}",
            "declaration": q.declaration or f"entry point {q.entry_point}",
            "pollers": None if polling is None else polling.get(q.name, []),
        }
        for q in queues
    ]
    if as_json:
        typer.echo(json.dumps({"queues": rows, "error": error}))
    else:
        for row in rows:
            who = (
                "?" if row["pollers"] is None else ", ".join(p["identity"] for p in row["pollers"])
            )
            typer.echo(
                f"{row['name']}: {row['workers']} by default, ports {row['ports']}, "
                f"{row['declaration']}; polling: {who or 'none'}"
            )
        if error:
            typer.secho(error, err=True, fg=typer.colors.YELLOW)
    raise typer.Exit(1 if error else 0)
