"""The Caddy front-door: routes /api/* to the API and everything else to the panel."""

from __future__ import annotations

from pathlib import Path

import httpx

from conceptor.platform.devservices.spec import DevService, NotReadyError
from conceptor.platform.http import client as http_client
from conceptor.platform.settings import REPO_ROOT, Settings
from conceptor.platform.tools import venv_tool

CADDYFILE = REPO_ROOT / "_dev-env" / "Caddyfile"


def command(_settings: Settings, _data_dir: Path) -> list[str]:
    return [str(venv_tool("caddy")), "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"]


def environ(settings: Settings, data_dir: Path) -> dict[str, str]:
    return {
        "FRONT_DOOR_PORT": str(settings.port("front_door")),
        "FRONT_DOOR_BIND": settings.host,
        "CADDY_ADMIN": f"{settings.host}:{settings.port('front_door_admin')}",
        # Several API processes: the Caddyfile splits the list into upstreams (round-robin).
        "API_UPSTREAM": " ".join((settings.front_door_api_upstream or "").replace(",", " ").split())
        or f"{settings.host}:{settings.port('api')}",
        "PANEL_UPSTREAM": settings.front_door_panel_upstream
        or f"{settings.host}:{settings.port('panel')}",
        # Caddy keeps state under XDG dirs; keep it out of $HOME.
        "XDG_DATA_HOME": str(data_dir / "data"),
        "XDG_CONFIG_HOME": str(data_dir / "config"),
    }


async def probe(settings: Settings) -> str:
    url = f"http://{settings.host}:{settings.port('front_door')}/healthz"
    try:
        async with http_client(timeout=3) as http:
            resp = await http.get(url)
    except httpx.HTTPError as exc:
        raise NotReadyError(f"front-door not answering at {url}: {exc}") from exc
    if resp.status_code != 200 or resp.text != "ok":
        raise NotReadyError(f"front-door {url} answered {resp.status_code} {resp.text[:80]!r}")
    return "front-door answers /healthz"


SERVICE = DevService(
    name="front-door",
    description="Caddy front-door (/api -> API, / -> panel)",
    ports=("front_door", "front_door_admin"),
    command=command,
    environ=environ,
    probe=probe,
    links={"front-door": "http://localhost:{front_door}"},
)
