"""Schemathesis on /api/openapi.json through the front-door: no 5xx, answers match the schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.api_helpers import LOG_DIR, ApiStack

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.api_stack"]

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)


@pytest.mark.timeout(240)
def test_openapi_schema_holds_under_generated_requests(
    api_stack: ApiStack, admin_token: str, workers: None, provisioned: Any
) -> None:
    """Every operation, fed generated valid and invalid input with an admin token, stays in spec."""
    report = LOG_DIR / "schemathesis.junit.xml"
    cmd = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{api_stack.front_door}/api/openapi.json",
        "--url",
        api_stack.front_door,
        "--header",
        f"Authorization: Bearer {admin_token}",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        "10",
        "--max-time",
        "90",
        "--generation-deterministic",
        "--request-timeout",
        "20",
        "--no-color",
        "--report",
        "junit",
        "--report-junit-path",
        str(report),
    ]
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=200, check=False)
    (LOG_DIR / "schemathesis.log").write_text(run.stdout + run.stderr)
    tail = "\n".join(run.stdout.splitlines()[-40:])
    assert run.returncode == 0, f"schemathesis found failures:\n{tail}"
    # 17 operations (the full diff by its ref; list, save, restore and delete snapshots)
    assert "Tested: 17" in run.stdout, tail
