"""The real `tilt ci` refuses a bad environment file before any process starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conceptor.platform.settings import REPO_ROOT, Settings
from conceptor.platform.tools import cached_tool

pytestmark = pytest.mark.integration

PREFIX = "495"  # nothing listens there: a started service would show in its localdev dir
TILT_API_PORT = "49599"
BAD_FILE = """\
apiVersion: conceptor/v1
databases:
  - name: billing
    migrations: billing/migrations
queues:
  - {name: core, declaration: conceptor.workers.declarations:CORE}
steps:
  - {name: topics, run: team_steps:create_topics, after: [topics]}
"""


def test_tilt_ci_refuses_a_bad_file_before_starting_anything(tmp_path: Path) -> None:
    bad = tmp_path / "environment.yaml"
    bad.write_text(BAD_FILE)
    (tmp_path / "team_steps.py").write_text("def create_topics(settings):\n    return None\n")
    localdev = tmp_path / "localdev"
    venv_bin = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TILT_", "KUBE", "CENTRAL_"))}
    env.update(
        PATH=f"{venv_bin}:{env.get('PATH', '/usr/bin:/bin')}",
        HOME=str(tmp_path),  # Tilt keeps its own state under $HOME: not the developer's
        CONCEPTOR_TOOLS_DIR=str(Settings().tools_dir),
        CONCEPTOR_ENVIRONMENT_FILE=str(bad),
        CENTRAL_LOCALDEV_DIR=str(localdev),
        KUBECONFIG=str(tmp_path / "no-kubeconfig"),
        TILT_INFRA="local",
        TILT_PORT_PREFIX=PREFIX,
    )
    tilt = cached_tool("tilt", "TILT_VERSION", "bin/tilt")
    result = subprocess.run(
        [str(tilt), "ci", "--port", TILT_API_PORT, "-f", str(REPO_ROOT / "Tiltfile")],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    refusal = (
        f"Error in fail: {bad} is refused (2 problem(s)):\n"
        "  databases[0].migrations: migrations folder 'billing/migrations' does not exist "
        f"({tmp_path.resolve() / 'billing' / 'migrations'}); create the folder or correct the "
        "path (relative to the environment file's folder)\n"
        "  steps[0].after[0]: the steps wait for each other in a cycle: topics after topics; "
        "remove one of these `after:` entries\n"
    )
    assert refusal in out, out
    # The Tiltfile stopped at its preflight: no tool check, no resource, no service's data.
    assert "localdev-" not in out, out
    assert not localdev.exists()
