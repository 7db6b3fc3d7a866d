"""`conceptor provision` and `conceptor reset-postgres`: thin commands, heavy imports deferred."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer


def provision_command(
    wait: bool = typer.Option(False, "--wait", help="Follow the run live; exit 1 if it fails."),
    step: list[str] | None = typer.Option(
        None,
        "--step",
        help="Run only these steps (repeatable): the environment file's graph, as "
        "`conceptor env check` implies it (`wait_for_<service>`, `migrate_postgres`, "
        "`migrate_postgres:<db>`, `import_realm:<realm>`, `ensure_buckets`, `<step>`).",
    ),
    timeout: float = typer.Option(600.0, help="With --wait: give up following after this long."),
    plan: bool = typer.Option(
        False,
        "--plan",
        help="Dry run: print what would change, write nothing. "
        "Exit 0 when there is nothing to do, 2 when there are changes, 1 on error.",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="With --plan: also save the plan as JSON (for --apply); with --diff: the diff.",
    ),
    apply: Path | None = typer.Option(
        None,
        "--apply",
        help="Apply exactly this saved plan; refused if the files or the live state moved since.",
    ),
    diff: str | None = typer.Option(
        None,
        "--diff",
        metavar="REF",
        help="Print a step's full diff by the reference its result names (diff.ref): a "
        "result lists 50 changes at most.",
    ),
) -> None:
    """Start ProvisionWorkflow (or attach to the open run) on the core queue; or plan; or apply."""
    names = _step_names() if step else []
    unknown = [s for s in step or [] if s not in names]
    if unknown:
        raise typer.BadParameter(f"unknown step(s) {', '.join(unknown)}", param_hint="--step")
    if sum((plan, apply is not None, diff is not None)) > 1:
        raise typer.BadParameter("give one of --plan, --apply and --diff", param_hint="--apply")
    if out is not None and not (plan or diff is not None):
        raise typer.BadParameter("--out saves a plan or a diff", param_hint="--out")
    if diff is not None:
        from conceptor.commands.provision_diff import show_diff

        raise typer.Exit(asyncio.run(show_diff(diff, out)))
    steps: list[str] | None = [s for s in names if s in step] if step else None
    # Imported here: every other `conceptor` command starts without the Temporal client.
    from conceptor.commands import provision_follow

    if plan:
        raise typer.Exit(asyncio.run(provision_follow.plan(steps, out)))
    if apply is not None:
        if steps is not None:
            raise typer.BadParameter("a saved plan says its own steps", param_hint="--step")
        raise typer.Exit(asyncio.run(provision_follow.apply_plan(apply, timeout)))
    raise typer.Exit(asyncio.run(provision_follow.provision(steps, wait, timeout)))


def _step_names() -> list[str]:
    """The provisioning graph's steps, by the environment file in use."""
    from conceptor.platform.environment import EnvironmentFileError
    from conceptor.stack_graph import step_names

    try:
        return step_names()
    except EnvironmentFileError as exc:
        raise typer.BadParameter(str(exc), param_hint="--step") from None


def drift_command(
    check: bool = typer.Option(
        False, "--check", help="Exit 2 when the latest check found drift, 0 when none."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON."),
    watch: bool = typer.Option(
        False,
        "--watch",
        help="Keep following the drift watch; exit 2 as soon as a check finds drift (for Tilt).",
    ),
    every: float = typer.Option(10.0, "--every", min=1.0, help="With --watch: poll interval."),
) -> None:
    """The drift watch: its latest check, and since when each object has drifted."""
    from conceptor.commands import provision_follow

    if watch:
        raise typer.Exit(asyncio.run(provision_follow.watch_drift(every)))
    raise typer.Exit(asyncio.run(provision_follow.drift(check=check, as_json=as_json)))


def reset_postgres_command(
    database: str | None = typer.Argument(
        None,
        help="A database the environment file declares (default: the first).",
        show_default=False,
    ),
    wait: bool = typer.Option(False, "--wait", help="Wait for the reset; exit 1 if it fails."),
) -> None:
    """Drop every table of DATABASE and re-apply its migrations (an undeclared name is
    refused, naming the file and the databases it declares)."""
    from conceptor.commands.provision_follow import reset_postgres

    raise typer.Exit(asyncio.run(reset_postgres(wait, database)))
