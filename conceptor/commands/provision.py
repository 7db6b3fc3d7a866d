"""`conceptor provision` and `conceptor reset-postgres`: thin commands, heavy imports deferred."""

from __future__ import annotations

import asyncio

import typer

from conceptor.contracts import ALL_STEPS, StepName


def provision_command(
    wait: bool = typer.Option(False, "--wait", help="Follow the run live; exit 1 if it fails."),
    step: list[str] | None = typer.Option(
        None, "--step", help=f"Run only these steps (repeatable): {', '.join(ALL_STEPS)}."
    ),
    timeout: float = typer.Option(600.0, help="With --wait: give up following after this long."),
) -> None:
    """Start ProvisionWorkflow (or attach to the open run) on the core queue."""
    unknown = [s for s in step or [] if s not in ALL_STEPS]
    if unknown:
        raise typer.BadParameter(f"unknown step(s) {', '.join(unknown)}", param_hint="--step")
    steps: list[StepName] | None = [s for s in ALL_STEPS if s in step] if step else None
    # Imported here: every other `conceptor` command starts without the Temporal client.
    from conceptor.commands.provision_follow import provision

    raise typer.Exit(asyncio.run(provision(steps, wait, timeout)))


def reset_postgres_command(
    wait: bool = typer.Option(False, "--wait", help="Wait for the reset; exit 1 if it fails."),
) -> None:
    """Drop every table of the application database and re-apply the migrations."""
    from conceptor.commands.provision_follow import reset_postgres

    raise typer.Exit(asyncio.run(reset_postgres(wait)))
