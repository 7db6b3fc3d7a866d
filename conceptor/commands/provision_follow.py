"""Provisioning in a terminal: start or attach and follow live; plans; applying a saved plan;
the drift watch's status."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import WorkflowAlreadyStartedError

from conceptor.client.plan import (
    Plan,
    PlanFailedError,
    apply_selection,
    drift_status,
    make_plan,
)
from conceptor.client.provisioning import (
    ProvisionStatus,
    provision_status,
    start_provision,
    start_reset_postgres,
)
from conceptor.contracts import PROVISION_WORKFLOW_ID
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


async def provision(steps: list[str] | None, wait: bool, timeout: float) -> int:
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
    print_warnings({s.step: s.result.warnings for s in status.steps if s.result is not None})
    if status.state == "completed":
        console.print("[green]provisioning completed[/]")
        return 0
    if status.state == "running":
        console.print(f"[red]still running after {timeout:g}s; it goes on in Temporal[/]")
        return 2
    console.print(f"[bold red]{status.error}[/]")
    return 1


async def reset_postgres(wait: bool, database: str | None = None) -> int:
    client = await connect_with_retry(get_settings(), timeout=60)
    handle = await start_reset_postgres(client, database=database)
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
        f"[green]database {database + ' ' if database else ''}reset:[/] "
        f"{result.dropped_tables} tables dropped, "
        f"{applied} migrations applied"
        + (f", {result.seed.counts.get('created', 0)} seed rows created" if result.seed else "")
    )
    return 0


def print_warnings(warnings: dict[str, list[str]]) -> None:
    """What the steps accepted but a person should know, one line per cause."""
    for step, lines in warnings.items():
        for line in lines:
            console.print(f"[yellow]warning[/] {step}: {line}", markup=True, highlight=False)


def plan_table(plan: Plan) -> Table:
    """One row per object the plan would change (or reports as untouched drift)."""
    title = "plan: " + (
        "changes pending" if plan.has_changes else "nothing to do, the live state matches"
    )
    table = Table(title=f"{title} ({plan.unchanged} objects unchanged)", title_justify="left")
    for column in ("step", "object", "change", "fields"):
        table.add_column(column)
    for row in plan.changes:
        table.add_row(row.step, f"{row.kind}:{row.name}", row.action, ", ".join(row.fields))
    if plan.left_out:
        refs = "; ".join(f"conceptor provision --diff {r}" for r in plan.refs.values())
        table.caption = f"and {plan.left_out} more changes, not listed: {refs}"
    return table


async def plan(steps: list[str] | None, out: Path | None) -> int:
    """Exit 0: nothing to do; 2: changes pending; 1: the plan could not be made."""
    client = await connect_with_retry(get_settings(), timeout=60)
    try:
        result = await make_plan(client, steps=steps)
    except PlanFailedError as exc:
        console.print(f"[bold red]plan failed:[/] {exc}")
        return 1
    console.print(plan_table(result))
    print_warnings(result.warnings)
    if out is not None:
        out.write_text(result.model_dump_json(indent=2))
        console.print(f"plan saved to {out}; apply it with: conceptor provision --apply {out}")
    return 2 if result.has_changes else 0


async def apply_plan(path: Path, timeout: float) -> int:
    """Apply a saved plan exactly; a stale plan fails before any write, naming what moved."""
    try:
        saved = Plan.model_validate_json(path.read_text())
        steps, expected = apply_selection(saved)
    except OSError as exc:
        console.print(f"[bold red]cannot read the plan {path}:[/] {exc.strerror}")
        return 1
    except ValueError as exc:  # pydantic's ValidationError included
        console.print(f"[bold red]{path} is not a plan made by --plan --out:[/] {exc}")
        return 1
    client = await connect_with_retry(get_settings(), timeout=60)
    try:
        handle = await start_provision(
            client, steps=steps, expected=expected, reason=f"apply the plan {path.name}"
        )
    except WorkflowAlreadyStartedError:
        console.print(
            "[bold red]a provisioning run is in progress:[/] wait for it, then make a new plan"
        )
        return 1
    console.print(f"applying {path} as ProvisionWorkflow {handle.id} run {handle.result_run_id}")
    status = await _follow(client, handle.id, timeout)
    if status.state == "completed":
        console.print("[green]plan applied[/]")
        return 0
    console.print(f"[bold red]{status.error}[/]")
    return 1


async def drift(*, check: bool, as_json: bool) -> int:
    settings = get_settings()
    client = await connect_with_retry(settings, timeout=60)
    status = await drift_status(client, schedule_id=settings.drift_watch_schedule_id)
    if as_json:
        print(status.model_dump_json(indent=2))
    elif not status.watching:
        console.print(
            "drift watch: off (provisioning registers it; CENTRAL_DRIFT_INTERVAL_SECONDS)"
        )
    elif status.latest is None:
        console.print(f"drift watch: every {status.interval_seconds:g}s; no check finished yet")
    else:
        report = status.latest
        table = Table(
            title=f"drift at {report.checked_at:%Y-%m-%d %H:%M:%S} ({status.latest_workflow_id})",
            title_justify="left",
        )
        for column in ("step", "object", "change", "fields", "since"):
            table.add_column(column)
        for item in report.items:
            since = status.since.get(item.label)
            table.add_row(
                item.step,
                f"{item.kind}:{item.name}",
                item.action,
                ", ".join(item.fields),
                f"{since:%H:%M:%S}" if since else "",
            )
        console.print(table if report.items else "no drift: the live state matches the files")
        if report.left_out:
            refs = "; ".join(f"conceptor provision --diff {r}" for r in report.diff_refs.values())
            console.print(f"and {report.left_out} more drifted objects, not listed: {refs}")
        if report.data_loss:
            console.print(f"[bold red]data loss healed:[/] {', '.join(report.data_loss)}")
    drifted = status.latest is not None and status.latest.has_drift
    return 2 if check and drifted else 0


async def watch_drift(every: float) -> int:
    """Follow the drift watch; return 2 (Tilt shows red) once its latest check found drift."""
    settings = get_settings()
    client = await connect_with_retry(settings, timeout=None)
    seen: str | None = None
    while True:
        status = await drift_status(client, schedule_id=settings.drift_watch_schedule_id)
        if status.latest_workflow_id != seen:
            seen = status.latest_workflow_id
            report = status.latest
            if report is None:
                console.print("drift watch: " + ("no check yet" if status.watching else "off"))
            elif report.has_drift:
                for item in report.items:
                    console.print(
                        f"[red]drift[/] {item.label} {item.action} {', '.join(item.fields)}"
                    )
                if report.data_loss:
                    console.print(f"[red]data loss[/] {', '.join(report.data_loss)} (healed)")
                console.print(f"see: conceptor drift; repair: conceptor provision ({seen})")
                return 2
            else:
                console.print(f"no drift at {report.checked_at:%H:%M:%S} ({seen})")
        await asyncio.sleep(every)
