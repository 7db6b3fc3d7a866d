"""Following provisioning runs in a terminal: start or attach, render live progress."""

from __future__ import annotations

import asyncio
import time

from rich.console import Console
from rich.live import Live
from rich.table import Table
from temporalio.client import Client, WorkflowFailureError

from conceptor.client.provisioning import (
    ProvisionStatus,
    provision_status,
    start_provision,
    start_reset_postgres,
)
from conceptor.contracts import PROVISION_WORKFLOW_ID, StepName
from conceptor.platform.settings import get_settings
from conceptor.platform.temporal import connect_with_retry

console = Console(stderr=True)
_STATE_STYLE = {
    "pending": "dim",
    "running": "yellow",
    "completed": "green",
    "failed": "bold red",
    "skipped": "dim",
}


def render(status: ProvisionStatus) -> Table:
    """The progress table: one row per step, as the Web UI's current details show it."""
    table = Table(title=f"{status.workflow_id} · {status.state}", title_justify="left")
    for column in ("step", "state", "attempts", "duration", "result"):
        table.add_column(column, justify="right" if column in ("attempts", "duration") else "left")
    for step in status.steps:
        duration = "" if step.duration_seconds is None else f"{step.duration_seconds:.2f} s"
        if step.result is not None:
            counts = ", ".join(f"{k} {v}" for k, v in step.result.counts.items() if v)
            result = f"{step.result.outcome}" + (f" ({counts})" if counts else "")
        else:
            result = step.error or ""
        style = _STATE_STYLE.get(step.state, "")
        table.add_row(step.step, f"[{style}]{step.state}[/]", str(step.attempts), duration, result)
    return table


async def _follow(client: Client, workflow_id: str, timeout: float) -> ProvisionStatus:
    deadline = time.monotonic() + timeout
    status = await provision_status(client, workflow_id=workflow_id)
    with Live(render(status), console=console, refresh_per_second=8) as live:
        while status.state == "running":
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)
            status = await provision_status(client, workflow_id=workflow_id)
            live.update(render(status))
    return status


async def provision(steps: list[StepName] | None, wait: bool, timeout: float) -> int:
    settings = get_settings()
    client = await connect_with_retry(settings, timeout=60)
    handle = await start_provision(client, steps=steps)
    console.print(
        f"ProvisionWorkflow [bold]{handle.id}[/] run {handle.result_run_id} on queue core — "
        f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}"
        f"/workflows/{handle.id}"
    )
    if not wait:
        return 0
    status = await _follow(client, PROVISION_WORKFLOW_ID, timeout)
    if status.state == "completed":
        console.print("[green]provisioning completed[/]")
        return 0
    if status.state == "running":
        console.print(f"[red]still running after {timeout:g}s; it goes on in Temporal[/]")
        return 2
    console.print(f"[bold red]{status.error}[/]")
    return 1


async def reset_postgres(wait: bool) -> int:
    client = await connect_with_retry(get_settings(), timeout=60)
    handle = await start_reset_postgres(client)
    console.print(f"ResetPostgresWorkflow [bold]{handle.id}[/] run {handle.result_run_id}")
    if not wait:
        return 0
    try:
        result = await handle.result()
    except WorkflowFailureError as exc:
        console.print(f"[bold red]reset failed:[/] {exc.cause}")
        return 1
    applied = result.migrations.counts.get("created", 0)
    console.print(
        f"[green]database reset:[/] {result.dropped_tables} tables dropped, "
        f"{applied} migrations applied"
    )
    return 0
