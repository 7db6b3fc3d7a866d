"""`conceptor env check` refuses a realm file's `${NAME}` that nothing resolves, as the import
step would at run time, and resolves the others exactly as the import step does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from conceptor.activities import realm_file
from conceptor.activities.realm_file import load_realm
from conceptor.cli import app
from conceptor.platform import realm_placeholders
from conceptor.platform.environment import FILE_VARIABLE
from conceptor.platform.settings import Settings


def _stack(folder: Path, realms: dict[str, dict[str, object]]) -> Path:
    """An environment file declaring `realms` (name: its realm file's contents)."""
    (folder / "migrations").mkdir()
    for name, body in realms.items():
        (folder / f"{name}.json").write_text(json.dumps({"realm": name, **body}))
    file = folder / "environment.yaml"
    doc = {
        "apiVersion": "conceptor/v1",
        "databases": [{"name": "app", "migrations": "migrations"}],
        "realms": [{"name": name, "file": f"{name}.json"} for name in realms],
        "queues": [{"name": "core", "declaration": "conceptor.workers.declarations:CORE"}],
    }
    file.write_text(yaml.safe_dump(doc))
    return file


@pytest.fixture(autouse=True)
def _no_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(realm_placeholders, "DOTENV_FILE", tmp_path / "absent.env")
    monkeypatch.setattr(realm_file, "DOTENV_FILE", tmp_path / "absent.env")
    monkeypatch.delenv("PARTNERS_SECRET", raising=False)
    monkeypatch.delenv("PARTNERS_URL", raising=False)


def test_env_check_names_the_file_and_each_unresolved_placeholder(tmp_path: Path) -> None:
    file = _stack(
        tmp_path,
        {
            "technova": {"smtpServer": {"port": "${SMTP_PORT}"}},
            "partners": {
                "clients": [{"secret": "${PARTNERS_SECRET}", "rootUrl": "${PARTNERS_URL}"}],
                "displayName": "${PARTNERS_SECRET} ${FRONT_DOOR_URL}",
            },
        },
    )
    result = CliRunner().invoke(app, ["env", "check", str(file), "--no-imports"])
    assert result.exit_code == 1
    where = tmp_path / "partners.json"
    assert result.output == (
        f"{file} is refused (2 problem(s)):\n"
        f"  realms[1].file: realm file partners.json ({where}) uses ${{PARTNERS_SECRET}}, which "
        "neither settings, the environment nor absent.env has; set PARTNERS_SECRET in one of "
        "them, or remove the placeholder from the file\n"
        f"  realms[1].file: realm file partners.json ({where}) uses ${{PARTNERS_URL}}, which "
        "neither settings, the environment nor absent.env has; set PARTNERS_URL in one of "
        "them, or remove the placeholder from the file\n"
    )


def test_env_check_passes_once_the_environment_or_dotenv_has_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = _stack(
        tmp_path,
        {"partners": {"clients": [{"secret": "${PARTNERS_SECRET}", "rootUrl": "${PARTNERS_URL}"}]}},
    )
    dotenv = tmp_path / ".env.development"
    dotenv.write_text("PARTNERS_URL=http://partners.test\n")
    monkeypatch.setattr(realm_placeholders, "DOTENV_FILE", dotenv)
    monkeypatch.setattr(realm_file, "DOTENV_FILE", dotenv)
    monkeypatch.setenv("PARTNERS_SECRET", "s3cret")
    result = CliRunner().invoke(app, ["env", "check", str(file), "--no-imports"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"environment ok: {file} (conceptor/v1)\n")
    # What the check accepted is what the import step fills in.
    realm = load_realm(tmp_path / "partners.json", Settings(), "partners")
    assert realm["clients"] == [{"secret": "s3cret", "rootUrl": "http://partners.test"}]


def test_the_tiltfile_preflight_refuses_them_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = _stack(tmp_path, {"partners": {"displayName": "${PARTNERS_SECRET}"}})
    monkeypatch.setenv(FILE_VARIABLE, str(file))
    result = CliRunner().invoke(app, ["dev", "ports", "--json", "--check-env"])
    assert result.exit_code == 0, result.output
    error = json.loads(result.output)["environment_error"]
    assert error == (
        f"{file} is refused (1 problem(s)):\n"
        f"  realms[0].file: realm file partners.json ({tmp_path / 'partners.json'}) uses "
        "${PARTNERS_SECRET}, which neither settings, the environment nor absent.env has; set "
        "PARTNERS_SECRET in one of them, or remove the placeholder from the file"
    )
