"""`dev ports --json` hands the Tiltfile the services the environment file leaves on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conceptor.cli import app
from conceptor.platform.environment import FILE_VARIABLE

ALL = ["postgres", "redis", "temporal", "keycloak", "minio", "mailpit", "front-door", "db-tools"]


def _services(monkeypatch: pytest.MonkeyPatch, file: Path | None) -> list[str]:
    if file is not None:
        monkeypatch.setenv(FILE_VARIABLE, str(file))
    result = CliRunner().invoke(app, ["dev", "ports", "--json"])
    assert result.exit_code == 0, result.output
    return list(json.loads(result.output)["services"])


def test_the_shipped_file_runs_every_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FILE_VARIABLE, raising=False)
    assert _services(monkeypatch, None) == ALL


def test_a_service_turned_off_is_not_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "environment.yaml"
    file.write_text(
        "apiVersion: conceptor/v1\n"
        "services: {mailpit: false, db-tools: false}\n"
        "queues:\n  - {name: core, declaration: conceptor.workers.declarations:CORE}\n"
    )
    assert _services(monkeypatch, file) == [s for s in ALL if s not in ("mailpit", "db-tools")]


def test_a_refused_file_lists_every_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "environment.yaml"
    file.write_text("apiVersion: conceptor/v1\nservices: {kafka: true}\n")
    assert _services(monkeypatch, file) == ALL
