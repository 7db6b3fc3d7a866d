"""`conceptor api serve` and `conceptor panel serve`: uvicorn on the ports of this prefix."""

from __future__ import annotations

import typer

from conceptor.platform.settings import get_settings

api_app = typer.Typer(help="The FastAPI backend at /api.", no_args_is_help=True)
panel_app = typer.Typer(
    help="The status panel served at / by the front-door.", no_args_is_help=True
)


def _run(app: str, port: int) -> None:
    import uvicorn  # deferred: other `conceptor` commands start without the web server

    settings = get_settings()
    uvicorn.run(
        app,
        factory=True,
        host=settings.host,
        port=port,
        # Logging is already configured (structlog); the front-door keeps the access log.
        log_config=None,
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
        timeout_graceful_shutdown=10,
    )


@api_app.command("serve")
def serve_api(
    port: int | None = typer.Option(
        None,
        help="another port than settings.port('api'), for a second API process behind the "
        "front-door (CENTRAL_FRONT_DOOR_API_UPSTREAM lists both)",
        min=1,
        max=65535,
    ),
) -> None:
    """Serve the API on settings.port('api'); routes and docs live under /api."""
    _run("conceptor.api.main:create_app", port or get_settings().port("api"))


@panel_app.command("serve")
def serve_panel() -> None:
    """Serve the status panel on settings.port('panel')."""
    _run("conceptor.api.panel.server:create_app", get_settings().port("panel"))
