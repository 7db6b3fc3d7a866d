"""Tilt with 2 core + 2 media workers: all ready; `tilt trigger worker-media-0` restarts only it."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import httpx
import pytest

from conceptor.platform.queues import worker_port
from conceptor.platform.settings import Settings
from tests.e2e.tilt_helpers import (
    free_port,
    listening_ports,
    run_tilt,
    start_tilt_up,
    stop_tilt_up,
    tilt_env,
    tilt_prefix,
)
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e

PREFIX = tilt_prefix("464")  # not the default 440, not another test's block
WORKERS = ["worker-core-0", "worker-core-1", "worker-media-0", "worker-media-1"]
TILTFILE_ARGS = ["--", "--core-workers=2", "--media-workers=2"]


def _ready_workers(port: int, env: dict[str, str]) -> set[str]:
    result = run_tilt(["get", "uiresources", "-o", "json", "--port", str(port)], env, timeout=30)
    if result.returncode != 0:
        return set()
    items = json.loads(result.stdout).get("items", [])
    return {
        item["metadata"]["name"]
        for item in items
        if item["metadata"]["name"] in WORKERS
        and item.get("status", {}).get("runtimeStatus") == "ok"
    }


def _pids(settings: Settings) -> dict[str, int]:
    pids = {}
    for name in WORKERS:
        _, queue, index = name.split("-")
        port = worker_port(settings, queue, int(index))
        body = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=3).json()
        assert (body["status"], body["queue"], body["index"]) == ("polling", queue, int(index))
        pids[name] = int(body["pid"])
    return pids


def _pids_or_none(settings: Settings) -> dict[str, int] | None:
    try:
        return _pids(settings)
    except (httpx.HTTPError, AssertionError, ValueError):
        return None


@pytest.mark.timeout(900)
def test_tilt_trigger_restarts_one_worker_only() -> None:
    """Four worker resources get ready; triggering worker-media-0 changes its PID, no other."""
    settings = Settings(port_prefix=PREFIX)
    assert listening_ports(settings) == [], "the test's port block must start empty"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="conceptor-tilt-workers-") as tmp:
        env = tilt_env(PREFIX, Path(tmp) / "localdev")
        up = start_tilt_up(env, port, Path(tmp) / "tilt.log", *TILTFILE_ARGS)
        try:
            wait_until(
                lambda: _ready_workers(port, env) == set(WORKERS),
                timeout=300,
                interval=1,
                message=f"worker resources never all ready: {_ready_workers(port, env)}",
            )
            wait_until(lambda: _pids_or_none(settings) is not None, timeout=30)
            before = _pids(settings)
            assert len(set(before.values())) == 4
            triggered = run_tilt(
                ["trigger", "worker-media-0", "--port", str(port)], env, timeout=30
            )
            assert triggered.returncode == 0, triggered.stderr

            def media_0_replaced() -> bool:
                now = _pids_or_none(settings)
                return now is not None and now["worker-media-0"] != before["worker-media-0"]

            wait_until(media_0_replaced, timeout=90, interval=0.5)
            after = _pids(settings)
            assert {k: v for k, v in after.items() if k != "worker-media-0"} == {
                k: v for k, v in before.items() if k != "worker-media-0"
            }
            assert after["worker-media-0"] != before["worker-media-0"]
            down = run_tilt(["down", *TILTFILE_ARGS], env, timeout=120)
            assert down.returncode == 0, down.stdout + down.stderr
        finally:
            stop_tilt_up(up, timeout=90)
        wait_until(
            lambda: listening_ports(settings) == [],
            timeout=60,
            message=f"still listening after tilt exited: {listening_ports(settings)}",
        )
