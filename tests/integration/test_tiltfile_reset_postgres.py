"""The real Tiltfile makes one reset-postgres button per declared database, from the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from conceptor.cli import app
from conceptor.platform.environment import FILE_VARIABLE
from conceptor.platform.settings import REPO_ROOT, Settings
from conceptor.platform.tools import cached_tool

pytestmark = pytest.mark.integration

PREFIX = "467"
SCRIPT = str(REPO_ROOT / "_dev-env" / "scripts" / "reset-postgres.bash")


def _environment(folder: Path) -> Path:
    """Three databases, the shipped one first."""
    migrations = REPO_ROOT / "services" / "central" / "migrations"
    for name in ("billing", "ledger"):
        (folder / name).mkdir(parents=True)
    file = folder / "environment.yaml"
    file.write_text(
        "apiVersion: conceptor/v1\n"
        "databases:\n"
        f"  - {{name: conceptor, migrations: {migrations}}}\n"
        "  - {name: billing, migrations: billing}\n"
        "  - {name: ledger, migrations: ledger, owner: ledger_owner}\n"
        "realms:\n"
        f"  - {{name: technova, file: {REPO_ROOT / '_dev-env' / 'realms' / 'technova.json'}}}\n"
        "queues:\n"
        "  - {name: core, declaration: conceptor.workers.declarations:CORE}\n"
    )
    return file


def _manifests(tmp_path: Path, file: Path) -> dict[str, dict[str, Any]]:
    """`tilt alpha tiltfile-result` in local mode with `file`: {resource: manifest}."""
    venv_bin = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TILT_", "KUBE", "CENTRAL_"))}
    env.update(
        PATH=f"{venv_bin}:{env.get('PATH', '/usr/bin:/bin')}",
        HOME=str(tmp_path),  # Tilt keeps its own state under $HOME
        CONCEPTOR_TOOLS_DIR=str(Settings().tools_dir),
        CONCEPTOR_ENVIRONMENT_FILE=str(file),
        CENTRAL_LOCALDEV_DIR=str(tmp_path / "localdev"),
        TILT_INFRA="local",
        TILT_PORT_PREFIX=PREFIX,
    )
    tilt = cached_tool("tilt", "TILT_VERSION", "bin/tilt")
    result = subprocess.run(
        [str(tilt), "alpha", "tiltfile-result", "-f", str(REPO_ROOT / "Tiltfile")],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return {m["Name"]: m for m in json.loads(result.stdout)["Manifests"]}


def test_one_reset_button_per_declared_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = _environment(tmp_path / "stack")
    monkeypatch.setenv(FILE_VARIABLE, str(file))
    ports = CliRunner().invoke(app, ["dev", "ports", "--json"])
    assert ports.exit_code == 0, ports.output
    assert json.loads(ports.output)["databases"] == ["conceptor", "billing", "ledger"]

    manifests = _manifests(tmp_path, file)
    resets = {
        name: m["DeployTarget"]["UpdateCmdSpec"]["args"]
        for name, m in manifests.items()
        if name.startswith("reset-postgres")
    }
    assert resets == {
        "reset-postgres": ["bash", SCRIPT],
        "reset-postgres-billing": ["bash", SCRIPT, "billing"],
        "reset-postgres-ledger": ["bash", SCRIPT, "ledger"],
    }
    for name in resets:
        assert manifests[name]["ResourceDependencies"] == ["localdev-temporal"], name
        # Manual, not started by `tilt up` (TRIGGER_MODE_MANUAL with auto_init=False).
        assert manifests[name]["TriggerMode"] == 2, name
