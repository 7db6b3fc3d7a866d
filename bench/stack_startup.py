"""Stack start-up: `tilt up` to all-ready (cold and warm) vs the slowest service starting alone."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from conceptor.platform.devservices import SERVICES, get_service
from conceptor.platform.devservices.launcher import port_in_use
from conceptor.platform.devservices.stack import LocalStack, stop_process
from conceptor.platform.settings import REPO_ROOT, Settings
from conceptor.platform.tools import cached_tool

PREFIX = "467"
RESULTS = REPO_ROOT / "bench" / "results" / "stack_startup.json"


def _env(localdev: Path) -> dict[str, str]:
    return {
        "TILT_INFRA": "local",
        "TILT_RUNMODE": "dev-outside-tilt",
        "TILT_PORT_PREFIX": PREFIX,
        "CENTRAL_LOCALDEV_DIR": str(localdev),
        "CENTRAL_LOG_FORMAT": "json",
    }


async def _all_ready(settings: Settings, timeout: float) -> float:
    """Seconds until every launcher's /ready answers 200 (each backed by a real request)."""
    start = time.monotonic()
    pending = set(SERVICES)
    async with httpx.AsyncClient(timeout=1) as http:
        while pending:
            if time.monotonic() - start > timeout:
                msg = f"not ready after {timeout}s: {sorted(pending)}"
                raise TimeoutError(msg)
            for name in list(pending):
                try:
                    resp = await http.get(f"http://127.0.0.1:{settings.launcher_port(name)}/ready")
                except httpx.HTTPError:
                    continue
                if resp.status_code == 200:
                    pending.discard(name)
            await asyncio.sleep(0.1)
    return time.monotonic() - start


def time_tilt_up(settings: Settings, localdev: Path, tilt: Path) -> float:
    """From `tilt up` to all seven services ready; then Tilt is stopped (it stops its servers)."""
    env = {**os.environ, **_env(localdev)}
    port = str(10000 + int(PREFIX))
    start = time.monotonic()
    proc = subprocess.Popen(
        [str(tilt), "up", "--stream", "--port", port],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        asyncio.run(_all_ready(settings, timeout=400))
        elapsed = time.monotonic() - start
    finally:
        stop_process(proc, signal.SIGINT, timeout=90)
    _wait_ports_free(settings)
    return elapsed


def _wait_ports_free(settings: Settings, timeout: float = 60) -> None:
    """The next run must start from nothing: wait until no service port of the block listens."""
    deadline = time.monotonic() + timeout
    ports = [settings.port(p) for svc in SERVICES for p in get_service(svc).ports]
    while any(port_in_use(settings.host, p) for p in ports):
        if time.monotonic() > deadline:
            msg = f"ports of prefix {PREFIX} still in use {timeout}s after Tilt stopped"
            raise RuntimeError(msg)
        time.sleep(0.2)


def time_single(settings: Settings, localdev: Path, name: str) -> float:
    stack = LocalStack(settings, env=_env(localdev), log_dir=localdev / "logs", services=[name])
    try:
        return stack.start(timeout=400)[name]
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    tilt = cached_tool("tilt", "TILT_VERSION", "bin/tilt")
    settings = Settings(port_prefix=PREFIX)
    root = Path(tempfile.mkdtemp(prefix="conceptor-bench-"))
    root.chmod(0o755)
    samples: dict[str, list[float]] = {"stack cold": [], "stack warm": []}
    for name in SERVICES:
        samples[f"{name} alone cold"] = []
        samples[f"{name} alone warm"] = []
    try:
        # Interleaved, so that the stack and its baseline see the same machine load.
        for run in range(args.runs):
            localdev = root / f"stack-{run}"
            samples["stack cold"].append(time_tilt_up(settings, localdev, tilt))
            samples["stack warm"].append(time_tilt_up(settings, localdev, tilt))
            for name in SERVICES:
                localdev = root / f"single-{name}-{run}"
                samples[f"{name} alone cold"].append(time_single(settings, localdev, name))
                samples[f"{name} alone warm"].append(time_single(settings, localdev, name))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    medians = {k: statistics.median(v) for k, v in samples.items()}
    slowest_cold = max(SERVICES, key=lambda n: medians[f"{n} alone cold"])
    slowest_warm = max(SERVICES, key=lambda n: medians[f"{n} alone warm"])
    ratios = {
        "cold": medians["stack cold"] / medians[f"{slowest_cold} alone cold"],
        "warm": medians["stack warm"] / medians[f"{slowest_warm} alone warm"],
    }
    table = Table(title=f"Stack start-up, median of {args.runs} (target: stack <= 1.2x slowest)")
    for col in ("measurement", "median s", "runs s"):
        table.add_column(col)
    for key, values in samples.items():
        table.add_row(key, f"{medians[key]:.2f}", " ".join(f"{v:.2f}" for v in values))
    table.add_row(f"ratio cold (vs {slowest_cold})", f"{ratios['cold']:.2f}", "")
    table.add_row(f"ratio warm (vs {slowest_warm})", f"{ratios['warm']:.2f}", "")
    Console().print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "runs": args.runs,
                "samples": samples,
                "medians": medians,
                "slowest": {"cold": slowest_cold, "warm": slowest_warm},
                "ratios": ratios,
                "target_ratio": 1.2,
            },
            indent=2,
        )
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
