"""`tilt ci` in local infra mode brings every service up for real, then leaves nothing behind."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from conceptor.platform.devservices import SERVICES
from conceptor.platform.settings import Settings
from tests.e2e.tilt_helpers import free_port, listening_ports, ready_events, run_tilt, tilt_env

pytestmark = pytest.mark.e2e

PREFIX = "466"  # not the default 440, not the integration tests' block


def test_tilt_ci_brings_every_service_up_in_local_mode() -> None:
    """Every `localdev-<svc>` resource becomes ready under `tilt ci`; afterwards no port listens."""
    settings = Settings(port_prefix=PREFIX)
    assert listening_ports(settings) == [], "the test's port block must start empty"
    with tempfile.TemporaryDirectory(prefix="conceptor-tilt-") as tmp:
        env = tilt_env(PREFIX, Path(tmp) / "localdev", TILT_RUNMODE="dev-outside-tilt")
        result = run_tilt(["ci", "--port", str(free_port()), "--timeout", "8m"], env, timeout=600)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-4000:]
        events = ready_events(output)
        assert sorted(events) == sorted(SERVICES), output[-4000:]
        for name in SERVICES:
            assert f"localdev-{name}" in output
        # Data went where the knob said, under the throwaway dir, one folder per service.
        assert (Path(tmp) / "localdev" / "postgres" / "data" / "PG_VERSION").exists()
        assert (Path(tmp) / "localdev" / "temporal" / "temporal.db").exists()
    assert listening_ports(settings) == []
