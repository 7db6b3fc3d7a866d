"""A tiny static server for the panel (the page fetches its data from /api)."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

PANEL_DIR = Path(__file__).parent
# Only these files are served: the package directory also holds Python modules.
FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/panel.js": ("panel.js", "text/javascript; charset=utf-8"),
    "/panel.css": ("panel.css", "text/css; charset=utf-8"),
}


async def _file(request: Request) -> Response:
    name, media_type = FILES[request.url.path]
    # no-cache: a re-deployed panel shows up on the next reload.
    return FileResponse(
        PANEL_DIR / name, media_type=media_type, headers={"cache-control": "no-cache"}
    )


async def _healthz(_request: Request) -> Response:
    return PlainTextResponse("ok")


def create_app() -> Starlette:
    """`/` serves the page, `/healthz` answers probes."""
    routes = [Route(path, _file) for path in FILES]
    routes.append(Route("/healthz", _healthz))
    return Starlette(routes=routes)
