"""A team's API routes come from the environment file (`api:`), beside the platform's."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conceptor.api.main import TeamRouterError, create_app
from conceptor.platform.environment import FILE_VARIABLE, EnvironmentFileError, check
from conceptor.platform.queues import team_code
from conceptor.platform.settings import Settings

CORE = "  - {name: core, declaration: conceptor.workers.declarations:CORE}\n"
PLATFORM_PATHS = {"/api/health", "/api/provision", "/api/workers", "/api/status"}
WIDGETS = '''"""A team's routes."""
from fastapi import APIRouter, Request

router = APIRouter(prefix="/widgets", tags=["widgets"])
not_a_router = 42


@router.post("")
async def add_widget(request: Request) -> dict[str, int]:
    return {"bytes": len(await request.body())}
'''


def _settings() -> Settings:
    return Settings(_env_file=None, api_max_body_bytes=1000)


def _paths(app: object) -> set[str]:
    return set(TestClient(app).get("/api/openapi.json").json()["paths"])  # type: ignore[arg-type]


def _team_file(folder: Path, api: str) -> Path:
    (folder / "team_widgets.py").write_text(WIDGETS)
    file = folder / "environment.yaml"
    file.write_text(f"apiVersion: conceptor/v1\nqueues:\n{CORE}{api}")
    return file


def test_the_shipped_file_serves_the_example_services_routes() -> None:
    """central's media routes and panel card, by the file's import paths, not the platform's."""
    from services.central.routes import recent_media

    app = create_app(_settings())
    assert {"/api/media", "/api/media/{asset_id}"} | PLATFORM_PATHS <= _paths(app)
    card = app.state.panel_card
    assert (card.title, card.empty, card.items) == (
        "Recent media",
        "no uploads yet — POST /api/media",
        recent_media,
    )
    assert team_code() == ["services"]  # the app image gets the service's folder


def test_without_an_api_section_only_the_platforms_routes_are_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FILE_VARIABLE, str(_team_file(tmp_path, "")))
    app = create_app(_settings())
    paths = _paths(app)
    assert paths >= PLATFORM_PATHS
    assert not any(p.startswith(("/api/media", "/api/widgets")) for p in paths)
    assert app.state.panel_card is None


def test_a_team_router_is_served_and_its_upload_paths_take_multipart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The router's module is found from the file's folder; only `upload_paths` take
    multipart bodies, and those up to CENTRAL_API_MAX_UPLOAD_BYTES."""
    body = {"files": {"file": ("w.bin", b"x" * 2000, "application/octet-stream")}}
    api = "api:\n  routers: [team_widgets:router]\n"
    monkeypatch.setenv(FILE_VARIABLE, str(_team_file(tmp_path, api)))
    refused = TestClient(create_app(_settings())).post("/api/widgets", **body)
    assert refused.status_code == 415
    assert "multipart/form-data" in refused.json()["detail"]

    _team_file(tmp_path, api + "  upload_paths: [/widgets]\n")
    taken = TestClient(create_app(_settings())).post("/api/widgets", **body)
    assert taken.status_code == 200
    assert taken.json()["bytes"] > 2000  # the multipart body, file and boundaries


def test_a_router_that_is_not_one_stops_the_api_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = _team_file(tmp_path, "api:\n  routers: [team_widgets:not_a_router]\n")
    monkeypatch.setenv(FILE_VARIABLE, str(file))
    with pytest.raises(TeamRouterError) as refused:
        create_app(_settings())
    assert str(refused.value) == (
        f"{file}: api.routers[0]: team_widgets:not_a_router is not a fastapi.APIRouter"
    )


def test_env_check_refuses_api_targets_that_do_not_import_or_fit(tmp_path: Path) -> None:
    """Each named by its YAML path, before anything starts."""
    api = (
        "api:\n"
        "  routers: [team_widgets:router, team_gone:router, team_widgets:not_a_router]\n"
        "  panel_card: {title: Widgets, items: team_widgets:not_a_router}\n"
    )
    with pytest.raises(EnvironmentFileError) as refused:
        check(_team_file(tmp_path, api))
    found = [(p.path, p.why) for p in refused.value.problems]
    assert found[0][0] == "api.routers[1]"
    assert found[0][1].startswith(
        "importing team_gone:router failed: ModuleNotFoundError: No module named 'team_gone'"
    )
    assert found[1:] == [
        ("api.routers[2]", "team_widgets:not_a_router is not a FastAPI APIRouter"),
        ("api.panel_card.items", "team_widgets:not_a_router is not callable"),
    ]
