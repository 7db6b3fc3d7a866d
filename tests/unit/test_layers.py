"""The layers hold at run time too: what the API and the CLI load to start a workflow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

WORKER_SIDE = ("conceptor.activities", "conceptor.workflows", "conceptor.workers")


def loaded_modules(module: str) -> set[str]:
    """Every module a fresh interpreter has loaded after importing `module`."""
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(out.stdout))


@pytest.mark.parametrize(
    "module",
    ["conceptor.api.main", "services.central.client", "conceptor.commands.provision_follow"],
)
def test_starting_workflows_loads_no_worker_code_and_no_pillow(module: str) -> None:
    loaded = loaded_modules(module)
    worker_code = sorted(m for m in loaded if m.startswith(WORKER_SIDE))
    assert worker_code == [], f"{module} loads worker code: {worker_code}"
    assert "PIL" not in loaded, f"{module} loads Pillow"


def test_platform_loads_nothing_of_the_application() -> None:
    loaded = loaded_modules("conceptor.platform.devservices.launcher")
    app = sorted(
        m for m in loaded if m.startswith("conceptor.") and not m.startswith("conceptor.platform")
    )
    assert app == [], f"the platform loads application modules: {app}"


def test_import_linter_contracts_hold() -> None:
    """The same check `make lint` runs; a forbidden import anywhere fails it."""
    lint = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert lint.returncode == 0, lint.stdout[-3000:] + lint.stderr[-2000:]
    assert "0 broken" in lint.stdout, lint.stdout[-3000:]
