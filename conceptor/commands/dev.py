"""`conceptor dev …`: run, probe and reset the local infrastructure services."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer

from conceptor.commands.manifests import manifests_app, parse_counts
from conceptor.contracts import CORE_QUEUE
from conceptor.platform.devservices import SERVICES, UnknownServiceError, get_service, launcher
from conceptor.platform.settings import MAX_WORKERS_PER_QUEUE, Settings, get_settings
from conceptor.platform.tools import ToolMissingError

dev_app = typer.Typer(
    help="Local infrastructure services (what Tilt runs in local infra mode).", no_args_is_help=True
)
dev_app.add_typer(manifests_app, name="manifests")

SERVICE_HELP = f"one of: {', '.join(SERVICES)}"


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


@dev_app.command("serve")
def serve_service(service: str = typer.Argument(..., help=SERVICE_HELP)) -> None:
    """Run SERVICE in the foreground on its port from TILT_PORT_PREFIX, data under .localdev/."""
    try:
        code = launcher.serve(get_settings(), service)
    except (UnknownServiceError, launcher.PortInUseError, ToolMissingError, RuntimeError) as exc:
        raise _fail(str(exc)) from None
    raise typer.Exit(code)


@dev_app.command("probe")
def probe_service(service: str = typer.Argument(..., help=SERVICE_HELP)) -> None:
    """Exit 0 when SERVICE answers a real request (a query, a token, a namespace describe)."""
    try:
        detail = launcher.probe_once(get_settings(), service)
    except UnknownServiceError as exc:
        raise _fail(str(exc)) from None
    except Exception as exc:
        raise _fail(f"{service} not ready: {exc}", code=1) from None
    typer.echo(f"{service} ready: {detail}")


@dev_app.command("wait")
def wait_services(
    services: list[str] = typer.Argument(None, help=f"default: all; {SERVICE_HELP}"),
    timeout: float = typer.Option(240.0, help="seconds before giving up"),
) -> None:
    """Wait until every named service is ready (probes run concurrently)."""
    settings = get_settings()
    try:
        chosen = [get_service(name) for name in (services or list(SERVICES))]
    except UnknownServiceError as exc:
        raise _fail(str(exc)) from None

    async def wait_all() -> list[str]:
        return await asyncio.gather(
            *(launcher.probe_until_ready(settings, svc, timeout=timeout) for svc in chosen)
        )

    try:
        details = asyncio.run(wait_all())
    except (TimeoutError, RuntimeError) as exc:
        raise _fail(str(exc), code=1) from None
    for svc, detail in zip(chosen, details, strict=True):
        typer.echo(f"{svc.name} ready: {detail}")


@dev_app.command("reset")
def reset_service(service: str = typer.Argument(..., help=SERVICE_HELP)) -> None:
    """Wipe SERVICE's data under .localdev/ (the service must be stopped)."""
    try:
        path = launcher.reset(get_settings(), service)
    except (UnknownServiceError, launcher.ServiceRunningError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"wiped {path}")


def _queues_plan(settings: Settings, counts: dict[str, int]) -> tuple[list[dict[str, Any]], str]:
    """Each declared queue: name, default workers, its MAX_WORKERS_PER_QUEUE ports; or why not."""
    from conceptor.platform.environment import EnvironmentFileError
    from conceptor.platform.queues import declared_queues, slot_port

    try:
        queues = declared_queues()
    except EnvironmentFileError as exc:
        return [], str(exc)  # `--check-env` reports it in full
    plan: list[dict[str, Any]] = []
    try:
        for ordinal, queue in enumerate(queues):
            ports = [
                slot_port(settings.port_prefix, settings.worker_port_prefix, ordinal, i)
                for i in range(MAX_WORKERS_PER_QUEUE)
            ]
            plan.append(
                {
                    "name": queue.name,
                    "workers": counts.get(queue.name, queue.workers),
                    "ports": ports,
                }
            )
    except ValueError as exc:
        return [], f"the worker ports of queue {queue.name!r} do not fit: {exc}"
    unknown = sorted(set(counts) - {q["name"] for q in plan})
    if unknown:
        names = ", ".join(q["name"] for q in plan)
        return plan, f"no queue named {', '.join(unknown)} in the environment file (it has {names})"
    return plan, ""


@dev_app.command("ports")
def show_ports(
    as_json: bool = typer.Option(False, "--json", help="one JSON object (for the Tiltfile)"),
    workers: list[str] = typer.Option(
        None, "--workers", help="QUEUE=N: list N workers of QUEUE (default: the file's count)"
    ),
    core_workers: int | None = typer.Option(
        None, min=0, max=MAX_WORKERS_PER_QUEUE, help="the same as --workers core=N"
    ),
    check_env: bool = typer.Option(
        False, "--check-env", help="with --json: also `env check`, under key environment_error"
    ),
    check_tools: bool = typer.Option(
        False, "--check-tools", help="with --json: also `dev doctor`, under key missing_tools"
    ),
) -> None:
    """Print every port of this TILT_PORT_PREFIX: services, then the declared queues' workers."""
    settings = get_settings()
    counts = parse_counts(workers, "--workers")
    if core_workers is not None:
        counts[CORE_QUEUE] = core_workers
    ports: dict[str, int] = settings.all_ports()
    queues, queues_error = _queues_plan(settings, counts)
    for entry in queues:
        for i in range(entry["workers"]):
            ports[f"worker-{entry['name']}-{i}"] = entry["ports"][i]
    if as_json:
        # The Tiltfile's whole preflight in one process: each `conceptor` start costs about a
        # second of CPU, and nothing of the stack starts before the Tiltfile is loaded. It
        # builds its worker resources from `queues` (every slot's port: its own counts may
        # differ from the file's).
        out: dict[str, object] = {"prefix": settings.port_prefix, "ports": ports, "queues": queues}
        # The team's code the file names (repository paths): the app image copies it too.
        out["team_code"] = _team_code()
        # The services the file leaves on: local mode makes a resource for these only.
        out["services"] = _services_on()
        # The declared databases, first first: a reset-postgres button for each.
        out["databases"] = _databases()
        if check_env:
            out["environment_error"] = _environment_error() or queues_error or None
        # As the separate commands ran: no tool is looked at for a refused environment file.
        if check_tools and not out.get("environment_error"):
            out["missing_tools"] = _missing_tools()
        typer.echo(json.dumps(out))
        return
    if queues_error and queues:
        raise _fail(queues_error)
    for name, port in ports.items():
        typer.echo(f"{name}={port}")


def _team_code() -> list[str]:
    from conceptor.platform.environment import EnvironmentFileError
    from conceptor.platform.queues import team_code

    try:
        return team_code()
    except EnvironmentFileError:
        return []  # `--check-env` says why


def _services_on() -> list[str]:
    """The environment file's services that run (every one while the file is refused)."""
    from conceptor.platform import environment

    try:
        return environment.load(environment.default_file()).services.enabled()
    except environment.EnvironmentFileError:
        return environment.Services().enabled()  # `--check-env` says why


def _databases() -> list[str]:
    """The environment file's databases (none while the file is refused)."""
    from conceptor.platform import environment

    try:
        return [d.name for d in environment.load(environment.default_file()).databases]
    except environment.EnvironmentFileError:
        return []  # `--check-env` says why


def _missing_tools() -> list[str]:
    """What `dev doctor` reports: one message per tool a service needs and cannot find."""
    settings = get_settings()
    missing: list[str] = []
    for service in SERVICES.values():
        try:
            service.command(settings, settings.service_dir(service.name))
        except ToolMissingError as exc:
            missing.append(str(exc))
    return missing


def _environment_error() -> str | None:
    """What `env check` prints when it refuses the environment file, else None."""
    from conceptor.platform import environment, realm_placeholders

    try:
        realm_placeholders.check(environment.default_file(), get_settings(), imports=True)
    except environment.EnvironmentFileError as exc:
        return str(exc)
    return None


@dev_app.command("doctor")
def check_tools() -> None:
    """Exit non-zero, naming what is missing, unless every tool the stack runs is installed."""
    missing = _missing_tools()
    if missing:
        raise _fail("; ".join(missing), code=1)
    typer.echo(f"all tools present for: {', '.join(SERVICES)}")
