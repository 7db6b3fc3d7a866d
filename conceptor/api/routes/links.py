"""Where the developer tools of this environment answer (public: the panel renders them)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from conceptor.api.deps import SettingsDep

router = APIRouter(prefix="/links", tags=["panel"])


class Link(BaseModel):
    """A tool's name and the URL a browser on this machine opens."""

    name: str
    url: str


class Links(BaseModel):
    """Developer tools, in display order."""

    links: list[Link]


@router.get("")
async def list_links(settings: SettingsDep) -> Links:
    """Temporal UI, Tilt, Mailpit, MinIO console, Keycloak admin, database tools, API docs."""
    port = settings.port
    return Links(
        links=[
            Link(name="Temporal UI", url=settings.temporal_ui_url),
            Link(name="Tilt", url=settings.tilt_ui_url),
            Link(name="Mailpit", url=f"http://localhost:{port('mailpit_ui')}"),
            Link(name="MinIO console", url=f"http://localhost:{port('minio_console')}"),
            Link(
                name="Keycloak admin",
                url=f"http://localhost:{port('keycloak')}/admin/master/console/#/{settings.realm_name}",
            ),
            Link(name="Database tools", url=f"http://localhost:{port('db_tools')}"),
            Link(name="API docs", url="/api/docs"),
        ]
    )
