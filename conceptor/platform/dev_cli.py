"""`conceptor dev …`: run, probe and reset the local infrastructure services."""

from __future__ import annotations

import asyncio

import typer

from conceptor.platform.devservices import SERVICES, UnknownServiceError, get_service, launcher
from conceptor.platform.settings import PORT_OFFSETS, get_settings
from conceptor.platform.tools import ToolMissingError

dev_app = typer.Typer(
    help="Local infrastructure services (what Tilt runs in local infra mode).", no_args_is_help=True
)

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


@dev_app.command("ports")
def show_ports() -> None:
    """Print every port of this TILT_PORT_PREFIX, one NAME=PORT per line."""
    settings = get_settings()
    for name in PORT_OFFSETS:
        typer.echo(f"{name}={settings.port(name)}")
