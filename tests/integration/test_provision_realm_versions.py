"""Exports written by Keycloak 18, 22, 24 and 25 themselves, imported into Keycloak 26 by the
reconciler: created, re-run with zero writes, drift repaired, and `realm upgrade` leaves a file
with nothing to warn about."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conceptor.platform.devservices.stack import LocalStack
from tests.integration.provision_realm_support import import_realm, realm_env
from tests.integration.test_provision_realm_fixtures import install_fixture

pytestmark = pytest.mark.integration
VERSIONS = ["kc18-fixture.json", "kc22-fixture.json", "kc24-fixture.json", "kc25-fixture.json"]


def upgrade(file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`conceptor realm upgrade FILE`, as a developer runs it against the stack's Keycloak."""
    return subprocess.run(
        [sys.executable, "-m", "conceptor", "realm", "upgrade", str(file), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        check=False,
    )


@pytest.mark.parametrize("fixture", VERSIONS)
async def test_version_export_converges_then_upgrades_clean(
    local_stack: LocalStack, tmp_path: Path, fixture: str
) -> None:
    """Created in one write with warnings; unchanged re-run; the upgraded file warns of
    nothing, changes nothing more, and its import into a new realm is created warning-free."""
    async with realm_env(local_stack.settings, tmp_path / "old") as (env, _):
        install_fixture(env, fixture)
        first = await import_realm(env)
        assert (first.result.outcome, first.writes) == ("created", ["POST /realms"])
        assert first.result.warnings, fixture
        again = await import_realm(env)
        assert (again.result.outcome, again.writes) == ("unchanged", [])
    async with realm_env(local_stack.settings, tmp_path / "new") as (env, _):
        install_fixture(env, fixture)
        file = env.settings.realm_file
        shown = upgrade(file)
        assert shown.returncode == 2, shown.stderr
        assert shown.stdout.startswith(f"--- {file} (as written)\n+++ {file} (upgraded)\n")
        written = upgrade(file, "--write")
        assert written.returncode == 0, written.stderr
        quiet = upgrade(file)
        assert (quiet.returncode, quiet.stderr) == (0, ""), quiet.stderr
        assert json.loads(file.read_text())["realm"] == env.realm
        created = await import_realm(env)
        assert (created.result.outcome, created.result.warnings) == ("created", [])
        again = await import_realm(env)
        assert (again.result.outcome, again.writes) == ("unchanged", [])
