"""`tilt ci` in local infra mode brings every service up for real, then leaves nothing behind."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from conceptor.platform.devservices import SERVICES
from conceptor.platform.settings import Settings
from tests.e2e.tilt_helpers import (
    free_port,
    listening_ports,
    ready_events,
    run_tilt,
    tilt_env,
    tilt_prefix,
)

pytestmark = pytest.mark.e2e

PREFIX = tilt_prefix("466")  # not the default 440, not the integration tests' block


def test_tilt_ci_brings_every_service_up_in_local_mode() -> None:
    """Every `localdev-<svc>` resource becomes ready under `tilt ci`; afterwards no port listens."""
    settings = Settings(port_prefix=PREFIX)
    assert listening_ports(settings) == [], "the test's port block must start empty"
    with tempfile.TemporaryDirectory(prefix="conceptor-tilt-") as tmp:
        env = tilt_env(PREFIX, Path(tmp) / "localdev", TILT_RUNMODE="dev-outside-tilt")
        result = run_tilt(
            ["ci", "--port", str(free_port()), "--timeout", "8m"],
            env,
            timeout=600,
            log_name="tilt-ci-services",
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-4000:]
        events = ready_events(output)
        assert sorted(events) == sorted(SERVICES), output[-4000:]
        for name in SERVICES:
            # Each resource ran the one launcher (Tilt shortens resource names in its log).
            assert f"conceptor dev serve {name}\n" in output, name
        # Data went where the knob said, under the throwaway dir, one folder per service.
        assert (Path(tmp) / "localdev" / "postgres" / "data" / "PG_VERSION").exists()
        assert (Path(tmp) / "localdev" / "temporal" / "temporal.db").exists()
    assert listening_ports(settings) == []


def test_tilt_ci_runs_the_whole_platform_with_two_workers_per_queue() -> None:
    """dev-in-tilt: services, 2+2 workers, provisioning, API and panel all healthy in `tilt ci`."""
    prefix = tilt_prefix("465")
    settings = Settings(port_prefix=prefix)
    assert listening_ports(settings) == [], "the test's port block must start empty"
    with tempfile.TemporaryDirectory(prefix="conceptor-tilt-") as tmp:
        env = tilt_env(prefix, Path(tmp) / "localdev", TILT_RUNMODE="dev-in-tilt")
        result = run_tilt(
            [
                "ci",
                "--port",
                str(free_port()),
                "--timeout",
                "9m",
                "--",
                "--core-workers=2",
                "--media-workers=2",
            ],
            env,
            timeout=660,
            log_name="tilt-ci-platform",
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert sorted(ready_events(output)) == sorted(SERVICES)
    for worker in ("worker-core-0", "worker-core-1", "worker-media-0", "worker-media-1"):
        # The health endpoint names the worker it belongs to (Tilt shortens resource names).
        assert f'"identity": "{worker}@' in output, worker
    provision_log = "\n".join(
        line for line in output.splitlines() if line.lstrip().startswith("provision")
    )
    assert "provision · completed" in provision_log, provision_log[-3000:]
    for step in ("migrate_postgres", "ensure_buckets", "import_realm", "wait_for_redis"):
        assert step in provision_log
    assert "api │ [readiness probe: success]" in output
    assert "panel │ [readiness probe: success]" in output
    assert listening_ports(settings) == []
