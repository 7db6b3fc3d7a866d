"""Provisioning speed on a warm stack: first run (fresh database, buckets, realm) and re-run.

Each run is timed from start to result with its per-step durations (medians of --runs).
Baseline, measured in the same run: the services' own readiness probes called directly, all
at once, without Temporal — the least a `wait-for-*` script does on every invocation.
Targets: re-run <= 1 s; first run <= 5 s beyond service readiness.
Environments are isolated per first run (the integration tests' helper) and removed after.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from _options import add_options, parse_options, write_results
from _stack import stack_env  # bench/_stack.py: run as `python bench/<name>.py`
from rich.console import Console
from rich.table import Table
from temporalio.client import Client

from conceptor.client.provisioning import start_provision
from conceptor.platform.devservices import get_service
from conceptor.platform.devservices.launcher import port_in_use
from conceptor.platform.devservices.stack import LocalStack
from conceptor.platform.settings import REPO_ROOT, Settings
from conceptor.platform.temporal import connect
from conceptor.workflows.provision import ProvisionWorkflow
from tests.shipped import ALL_STEPS

# The isolated environments (own database, buckets, realm) are the integration tests' helper.
sys.path.insert(0, str(REPO_ROOT))
from tests.integration.provision_support import (
    ProvisionEnv,
    in_process_worker,
    isolated_env,
)

SERVICES = ("postgres", "redis", "temporal", "keycloak", "minio")
PROBED = ("postgres", "redis", "minio", "keycloak")
TARGET_RERUN_S = 1.0
TARGET_FIRST_S = 5.0


async def timed_run(client: Client, env: ProvisionEnv) -> dict[str, Any]:
    started = time.perf_counter()
    handle = await start_provision(
        client, workflow_id=f"bench-{uuid.uuid4()}", task_queue=env.queue
    )
    result = await handle.result()
    wall = time.perf_counter() - started
    progress = await handle.query(ProvisionWorkflow.progress)
    return {
        "wall_s": wall,
        "outcomes": result.outcomes,
        "steps_s": {p.step: p.duration_seconds for p in progress.steps},
    }


async def direct_probes(settings: Settings) -> float:
    started = time.perf_counter()
    await asyncio.gather(*(get_service(name).probe(settings) for name in PROBED))
    return time.perf_counter() - started


def _median_steps(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {s: statistics.median(r["steps_s"][s] for r in runs) for s in ALL_STEPS}


async def measure(settings: Settings, runs: int, tmp: Path) -> dict[str, Any]:
    client = await connect(settings)
    firsts: list[dict[str, Any]] = []
    reruns: list[dict[str, Any]] = []
    probes: list[float] = []
    async with AsyncExitStack() as stack:
        # One worker for the whole bench, as in `tilt up`: warm it with one untimed run.
        warm = await stack.enter_async_context(isolated_env(settings, tmp / "warm"))
        worker_env = warm
        await stack.enter_async_context(in_process_worker(client, warm))
        await timed_run(client, warm)
        for i in range(runs):
            probes.append(await direct_probes(settings))
            async with isolated_env(settings, tmp / f"first-{i}") as env:
                env.queue = f"bench-{uuid.uuid4()}"
                async with in_process_worker(client, env):
                    firsts.append(await timed_run(client, env))
        for _ in range(runs):
            reruns.append(await timed_run(client, worker_env))
    unchanged = all(set(r["outcomes"].values()) == {"unchanged"} for r in reruns)
    return {
        "runs": runs,
        "baseline_direct_probes_s": statistics.median(probes),
        "first_run_s": statistics.median(r["wall_s"] for r in firsts),
        "rerun_s": statistics.median(r["wall_s"] for r in reruns),
        "first_run_steps_s": _median_steps(firsts),
        "rerun_steps_s": _median_steps(reruns),
        "reruns_all_unchanged": unchanged,
        "first_runs_all_created": all(
            r["outcomes"]["migrate_postgres"] == "created"
            and r["outcomes"]["import_realm"] == "created"
            for r in firsts
        ),
    }


def report(data: dict[str, Any], console: Console) -> None:
    table = Table(title=f"provisioning, median of {data['runs']} (seconds)")
    table.add_column("step")
    table.add_column("first run", justify="right")
    table.add_column("re-run", justify="right")
    for step in ALL_STEPS:
        table.add_row(
            step, f"{data['first_run_steps_s'][step]:.3f}", f"{data['rerun_steps_s'][step]:.3f}"
        )
    base = data["baseline_direct_probes_s"]
    table.add_row("[bold]whole workflow", f"{data['first_run_s']:.3f}", f"{data['rerun_s']:.3f}")
    table.add_row(
        "x direct probes", f"{data['first_run_s'] / base:.1f}", f"{data['rerun_s'] / base:.1f}"
    )
    console.print(table)
    console.print(
        f"baseline (four readiness probes at once, no Temporal): {base:.3f} s · "
        f"service readiness: {data['stack_ready_s']:.1f} s\n"
        f"re-run {data['rerun_s']:.3f} s (target <= {TARGET_RERUN_S} s): "
        f"{'met' if data['rerun_target_met'] else 'MISSED'}; "
        f"first run {data['first_run_s']:.3f} s (target <= {TARGET_FIRST_S} s): "
        f"{'met' if data['first_run_target_met'] else 'MISSED'}; "
        f"re-runs all unchanged: {data['reruns_all_unchanged']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_options(parser, runs=5)
    parser.add_argument("--prefix", default="453")
    parser.add_argument("--localdev", help="reuse services running on --prefix with this dir")
    args = parse_options(parser)
    tmp, env = stack_env("provision", args.prefix, Path(args.localdev) if args.localdev else None)
    settings = Settings()
    stack = LocalStack(settings, env=env, log_dir=tmp / "logs", services=SERVICES)
    reuse = bool(args.localdev) and port_in_use(settings.host, settings.port("temporal"))
    started = time.perf_counter()
    try:
        if reuse:
            asyncio.run(stack.wait_ready(SERVICES, timeout=120))
        else:
            stack.start(timeout=300)
        ready = time.perf_counter() - started
        data = asyncio.run(measure(settings, args.runs, tmp))
    finally:
        if not reuse:
            stack.stop()
    data["stack_ready_s"] = ready
    data["stack_reused"] = reuse
    data["rerun_target_met"] = data["rerun_s"] <= TARGET_RERUN_S
    data["first_run_target_met"] = data["first_run_s"] <= TARGET_FIRST_S
    report(data, Console())
    write_results(args, "provision", data)


if __name__ == "__main__":
    main()
