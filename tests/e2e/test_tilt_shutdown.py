"""Stopping the stack leaves nothing running: Ctrl-C of `tilt up`, `tilt down`, `make down`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from conceptor.commands.k8s_manifests import DRAIN_MARGIN_SECONDS
from conceptor.platform.queues import worker_port
from conceptor.platform.settings import REPO_ROOT, Settings
from tests.e2e.tilt_helpers import (
    free_port,
    listening_ports,
    run_tilt,
    start_tilt_up,
    tilt_env,
    tilt_prefix,
)
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e

PREFIX = tilt_prefix("467")  # not the default 440, not another test's block
SERVICES = ["postgres", "redis", "temporal"]
WORKERS = ["--", "--core-workers=1", "--media-workers=1"]
# A busy worker drains for up to CENTRAL_WORKER_GRACE_PERIOD_SECONDS (30) plus the pods' drain
# margin (what a pod's terminationGracePeriodSeconds allows); an idle one stops at once.
GRACE_SECONDS = Settings().worker_grace_period_seconds + DRAIN_MARGIN_SECONDS
DEV_DOWN = REPO_ROOT / "_dev-env" / "scripts" / "dev-down.bash"


def stack_processes(prefix: str) -> list[str]:
    """`pid command` of every live process started for this prefix (Tilt passes it down)."""
    found = []
    marker = f"TILT_PORT_PREFIX={prefix}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in environ and state != "Z":
            found.append(f"{entry.name} {command[:120]}")
    return found


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def all_ready(settings: Settings) -> bool:
    launchers = [settings.launcher_port(s) for s in SERVICES]
    workers = [worker_port(settings, "core", 0), worker_port(settings, "media", 0)]
    return all(_ok(f"http://127.0.0.1:{p}/ready") for p in launchers) and all(
        _ok(f"http://127.0.0.1:{p}/healthz") for p in workers
    )


class TiltUp:
    """`tilt up` of the whole stack in its own session, as a terminal would run it."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.proc = start_tilt_up(env, self.port, log, *WORKERS)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def assert_nothing_left(settings: Settings, since: float, what: str) -> None:
    """Within the grace period no process of the prefix runs and no port of it listens."""

    def clean() -> bool:
        return stack_processes(settings.port_prefix) == [] and listening_ports(settings) == []

    wait_until(
        clean,
        timeout=GRACE_SECONDS - (time.monotonic() - since),
        interval=0.2,
        message=(
            f"after {what}: still running {stack_processes(settings.port_prefix)}, "
            f"listening {listening_ports(settings)}"
        ),
    )


@pytest.mark.timeout(900)
def test_every_way_of_stopping_leaves_nothing_and_allows_an_immediate_restart() -> None:
    """Ctrl-C, `tilt down` and `make down` each stop everything within the grace period; a
    `tilt up` right after each one comes up on the same ports."""
    settings = Settings(port_prefix=PREFIX)
    assert stack_processes(PREFIX) == [] and listening_ports(settings) == [], "block not empty"
    with tempfile.TemporaryDirectory(prefix="conceptor-tilt-down-") as tmp:
        env = tilt_env(PREFIX, Path(tmp) / "localdev")
        log = Path(tmp) / "tilt.log"
        ups: list[TiltUp] = []
        try:
            # 1. Ctrl-C of `tilt up` (the terminal signals Tilt's process group only).
            ups.append(TiltUp(env, log))
            wait_until(lambda: all_ready(settings), timeout=300, interval=0.5)
            stopped = time.monotonic()
            os.killpg(ups[-1].proc.pid, signal.SIGINT)
            assert_nothing_left(settings, stopped, "Ctrl-C of tilt up")

            # 2. `tilt up` at once works; `tilt down` stops it and everything it started.
            ups.append(TiltUp(env, log))
            wait_until(lambda: all_ready(settings), timeout=300, interval=0.5)
            stopped = time.monotonic()
            down = run_tilt(["down"], env, timeout=120, log_name="tilt-down-shutdown")
            assert down.returncode == 0, down.stdout[-3000:] + down.stderr[-3000:]
            assert_nothing_left(settings, stopped, "tilt down")

            # 3. Again at once; then `make down` (the script it runs) stops everything.
            ups.append(TiltUp(env, log))
            wait_until(lambda: all_ready(settings), timeout=300, interval=0.5)
            stopped = time.monotonic()
            made = subprocess.run(
                ["bash", str(DEV_DOWN)],
                env={**env, "CONCEPTOR_VENV": sys.prefix},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert made.returncode == 0, made.stdout + made.stderr
            assert_nothing_left(settings, stopped, "make down")
            assert [up.proc.poll() is not None for up in ups] == [True, True, True]
        except BaseException:
            print(log.read_text()[-6000:])
            raise
        finally:
            for up in ups:
                up.kill()
            if stack_processes(PREFIX):  # a failed step: leave the machine as we found it
                subprocess.run(
                    ["bash", str(DEV_DOWN)],
                    env={**env, "CONCEPTOR_VENV": sys.prefix},
                    capture_output=True,
                    timeout=120,
                    check=False,
                )
