"""Mailpit: SMTP sink with a web UI and HTTP API."""

from __future__ import annotations

from pathlib import Path

import httpx

from conceptor.platform.devservices.spec import DevService, NotReadyError
from conceptor.platform.http import client as http_client
from conceptor.platform.settings import Settings
from conceptor.platform.tools import cached_tool


def command(settings: Settings, data_dir: Path) -> list[str]:
    mailpit = cached_tool("mailpit", "MAILPIT_VERSION", "bin/mailpit")
    return [
        str(mailpit),
        "--smtp",
        f"{settings.host}:{settings.port('mailpit_smtp')}",
        "--listen",
        f"{settings.host}:{settings.port('mailpit_ui')}",
        "--database",
        str(data_dir / "mailpit.db"),
        "--disable-version-check",
        "--smtp-auth-accept-any",
        "--smtp-auth-allow-insecure",
    ]


async def probe(settings: Settings) -> str:
    try:
        async with http_client(timeout=3) as http:
            resp = await http.get(f"{settings.mailpit_api_url}/api/v1/info")
            resp.raise_for_status()
    except httpx.HTTPError as exc:
        raise NotReadyError(f"Mailpit API not answering: {exc}") from exc
    return f"mailpit {resp.json().get('Version', '?')}"


SERVICE = DevService(
    name="mailpit",
    description="Mailpit SMTP + web UI",
    ports=("mailpit_smtp", "mailpit_ui"),
    command=command,
    probe=probe,
    links={"Mailpit": "http://localhost:{mailpit_ui}"},
)
