"""Plan and drift-watch cost on the largest realm fixture: is a plan quick, is the watch cheap?

Runs its own stack (PostgreSQL, Redis, Temporal, Keycloak, MinIO; prefix 468, throwaway data),
provisions one isolated environment whose realm is the largest fixture, then, --runs times
each (medians):

- plan of the realm step: the `import_realm` activity with `plan=True`, exactly as a worker
  runs it: seconds, admin calls and writes counted on the wire (target: <= 3 s, 0 writes);
  baseline, measured in the same run and alternating with it: Keycloak's own
  `partial-export` of the same realm, the one call that reads a realm whole;
- the whole plan (`ProvisionPlanWorkflow` through Temporal, every step), seconds;
- one drift tick (`DriftWatchWorkflow`, the run the `drift-watch` schedule starts) against
  an idle window of the same length, alternating: CPU seconds of this process (it hosts the
  worker), of Keycloak, of PostgreSQL (the server and its backends), of MinIO and of the
  Temporal server. The tick's cost is its CPU minus the idle window's; at the default interval
  (300 s) that is the share of one core the watch takes when left on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from _options import add_options, exit_if_missed, parse_options, write_results
from _proc import cpu_seconds, listener_pid, tree_cpu_seconds  # run as `python bench/<name>.py`
from _stack import stack_env
from realm_import import WireCount, largest_fixture
from rich.console import Console
from rich.table import Table
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from conceptor.activities.keycloak import KeycloakActivities
from conceptor.client.plan import make_plan
from conceptor.client.provisioning import start_provision
from conceptor.contracts import DRIFT_WATCH_WORKFLOW, DriftReport, ReconcileInput
from conceptor.platform.devservices.stack import LocalStack
from conceptor.platform.keycloak_tokens import AdminTokens
from conceptor.platform.settings import REPO_ROOT, Settings
from conceptor.platform.temporal import connect

sys.path.insert(0, str(REPO_ROOT))
from tests.integration.provision_support import (
    ProvisionEnv,
    in_process_worker,
    isolated_env,
)

PREFIX = "468"
SERVICES = ("postgres", "redis", "temporal", "keycloak", "minio")
MEASURED = ("keycloak", "postgres", "minio", "temporal")
TARGET_PLAN_S = 3.0
DEFAULT_DRIFT_INTERVAL_S = float(Settings.model_fields["drift_interval_seconds"].default)


class Processes:
    """CPU seconds so far of this process and of each server, read together."""

    def __init__(self, settings: Settings) -> None:
        self.pids = {name: listener_pid(settings.port(name)) for name in MEASURED}

    def read(self) -> dict[str, float]:
        # PostgreSQL forks a backend per connection: count the server with its children.
        out = {"worker (this process)": time.process_time()}
        for name, pid in self.pids.items():
            out[name] = tree_cpu_seconds(pid) if name == "postgres" else cpu_seconds(pid)
        return out


async def realm_plan(activities: KeycloakActivities, wire: WireCount) -> dict[str, Any]:
    with wire.counting():
        started = time.perf_counter()
        result = await ActivityEnvironment().run(activities.import_realm, ReconcileInput(plan=True))
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "admin_calls": wire.calls["reads"] + wire.calls["writes"],
        "writes": wire.calls["writes"],
        "pending": len(result.diff.pending) if result.diff else None,
        "compared": len(result.diff.changes) if result.diff else None,
    }


async def partial_export(
    env: ProvisionEnv, http: httpx.AsyncClient, tokens: AdminTokens
) -> dict[str, Any]:
    token = await tokens.get(http)
    url = (
        f"{env.settings.keycloak_url}/admin/realms/{quote(env.realm, safe='')}/partial-export"
        "?exportClients=true&exportGroupsAndRoles=true"
    )
    started = time.perf_counter()
    resp = await http.post(url, headers={"Authorization": f"Bearer {token}"})
    seconds = time.perf_counter() - started
    resp.raise_for_status()
    return {"seconds": seconds, "admin_calls": 1, "writes": 0}


async def whole_plan(client: Client, env: ProvisionEnv) -> dict[str, Any]:
    started = time.perf_counter()
    plan = await make_plan(client, task_queue=env.queue, workflow_id=f"plan-{uuid.uuid4()}")
    if plan.has_changes:
        msg = f"the bench environment has a plan to apply: {plan.changes[:5]}"
        raise RuntimeError(msg)
    return {"seconds": time.perf_counter() - started, "unchanged": plan.unchanged}


async def cpu_of(procs: Processes, work: Awaitable[Any]) -> tuple[float, dict[str, float]]:
    before = procs.read()
    started = time.perf_counter()
    await work
    wall = time.perf_counter() - started
    after = procs.read()
    return wall, {k: after[k] - before[k] for k in before}


async def drift_tick(client: Client, env: ProvisionEnv) -> DriftReport:
    report: DriftReport = await client.execute_workflow(
        DRIFT_WATCH_WORKFLOW,
        id=f"drift-bench-{uuid.uuid4()}",
        task_queue=env.queue,
        result_type=DriftReport,
    )
    if report.has_drift or report.unchecked:
        msg = f"the bench environment drifted or was not compared: {report}"
        raise RuntimeError(msg)
    return report


async def measure(settings: Settings, runs: int, tmp: Path, fixture: Path) -> dict[str, Any]:
    client = await connect(settings)
    realm = f"bench-{uuid.uuid4().hex[:8]}"
    realm_file = tmp / "realm.json"
    data = json.loads(fixture.read_text(encoding="utf-8"))
    data["realm"] = realm
    realm_file.write_text(json.dumps(data))
    procs = Processes(settings)
    wire = WireCount()
    out: dict[str, list[Any]] = {
        "realm_plan": [],
        "partial_export": [],
        "whole_plan": [],
        "tick": [],
        "idle": [],
    }
    async with AsyncExitStack() as stack:
        env = await stack.enter_async_context(
            isolated_env(settings, tmp / "env", realm_file=realm_file, realm_name=realm)
        )
        env.realm = realm  # so that the environment's clean-up deletes this realm
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=300))
        await stack.enter_async_context(in_process_worker(client, env))
        handle = await start_provision(
            client, workflow_id=f"bench-{uuid.uuid4()}", task_queue=env.queue
        )
        await handle.result()
        # Warm every path once, untimed.
        # One activities object and one token cache for the whole bench, as one worker keeps
        # its own: no measured call pays for a password grant.
        activities, tokens = KeycloakActivities(env.settings), AdminTokens(env.settings)
        await realm_plan(activities, wire)
        await partial_export(env, http, tokens)
        await whole_plan(client, env)
        await drift_tick(client, env)
        for i in range(runs):
            pair = [realm_plan(activities, wire), partial_export(env, http, tokens)]
            for job in pair if i % 2 == 0 else pair[::-1]:
                result = await job
                out["realm_plan" if "pending" in result else "partial_export"].append(result)
            out["whole_plan"].append(await whole_plan(client, env))
            wall, tick = await cpu_of(procs, drift_tick(client, env))
            _, idle = await cpu_of(procs, asyncio.sleep(wall))
            out["tick"].append({"wall_s": wall, "cpu_s": tick})
            out["idle"].append({"wall_s": wall, "cpu_s": idle})
    return out


def _median(rows: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in rows))


def report(data: dict[str, Any], fixture: Path, console: Console) -> dict[str, Any]:
    plan_s = _median(data["realm_plan"], "seconds")
    export_s = _median(data["partial_export"], "seconds")
    paired = statistics.median(
        p["seconds"] / e["seconds"]
        for p, e in zip(data["realm_plan"], data["partial_export"], strict=True)
    )
    writes = max(r["writes"] for r in data["realm_plan"])
    names = list(data["tick"][0]["cpu_s"])
    tick_cpu = {n: statistics.median(t["cpu_s"][n] for t in data["tick"]) for n in names}
    idle_cpu = {n: statistics.median(t["cpu_s"][n] for t in data["idle"]) for n in names}
    extra = {n: max(tick_cpu[n] - idle_cpu[n], 0.0) for n in names}
    tick_wall = statistics.median(t["wall_s"] for t in data["tick"])
    summary = {
        "fixture": str(fixture.relative_to(REPO_ROOT)),
        "fixture_kb": fixture.stat().st_size / 1024,
        "runs": len(data["tick"]),
        "load_average": os.getloadavg(),
        "realm_plan_s": plan_s,
        "realm_plan_admin_calls": _median(data["realm_plan"], "admin_calls"),
        "realm_plan_writes_max": writes,
        "realm_plan_objects_compared": _median(data["realm_plan"], "compared"),
        "baseline_partial_export_s": export_s,
        "realm_plan_vs_partial_export_paired": paired,
        "whole_plan_s": _median(data["whole_plan"], "seconds"),
        "drift_tick_wall_s": tick_wall,
        "drift_tick_cpu_s": tick_cpu,
        "idle_window_cpu_s": idle_cpu,
        "drift_tick_extra_cpu_s": extra,
        "drift_tick_extra_cpu_total_s": sum(extra.values()),
        "drift_watch_core_share_at_default_interval": sum(extra.values())
        / DEFAULT_DRIFT_INTERVAL_S,
        "plan_target_met": plan_s <= TARGET_PLAN_S and writes == 0,
        "samples": data,
    }
    table = Table(
        title=f"plan and drift tick, {summary['fixture']} ({summary['fixture_kb']:.0f} KB), "
        f"median of {summary['runs']}"
    )
    for col in ("what", "seconds", "admin calls", "writes", "note"):
        table.add_column(col, justify="left" if col in ("what", "note") else "right")
    table.add_row(
        "plan of import_realm (activity)",
        f"{plan_s:.2f}",
        f"{summary['realm_plan_admin_calls']:.0f}",
        f"max {writes}",
        f"{summary['realm_plan_objects_compared']:.0f} objects compared",
    )
    table.add_row("baseline: Keycloak partial-export", f"{export_s:.2f}", "1", "0", "")
    table.add_row("plan / partial-export (median of pairs)", f"{paired:.2f}x")
    table.add_row(
        "whole plan (ProvisionPlanWorkflow)", f"{summary['whole_plan_s']:.2f}", "", "", ""
    )
    console.print(table)
    cpu = Table(title=f"one drift tick ({tick_wall:.2f} s) vs an idle window as long, CPU s")
    for col in ("process", "tick", "idle", "tick - idle"):
        cpu.add_column(col, justify="left" if col == "process" else "right")
    for n in names:
        cpu.add_row(n, f"{tick_cpu[n]:.2f}", f"{idle_cpu[n]:.2f}", f"{extra[n]:.2f}")
    share = summary["drift_watch_core_share_at_default_interval"]
    cpu.add_row("[bold]all", "", "", f"{summary['drift_tick_extra_cpu_total_s']:.2f}")
    console.print(cpu)
    verdict = "met" if summary["plan_target_met"] else "MISSED"
    console.print(
        f"realm plan {plan_s:.2f} s, {writes} writes (target <= {TARGET_PLAN_S} s, 0 writes): "
        f"{verdict}; drift watch at the default {DEFAULT_DRIFT_INTERVAL_S:.0f} s interval: "
        f"{share * 100:.2f} % of one core; load average {summary['load_average'][0]:.1f}"
    )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_options(parser, runs=5)
    parser.add_argument("--prefix", default=PREFIX)
    parser.add_argument("--fixture", type=Path, help="realm file (default: the largest fixture)")
    args = parse_options(parser)
    fixture = (args.fixture or largest_fixture()).resolve()
    tmp, env = stack_env("plan", args.prefix)
    settings = Settings()
    stack = LocalStack(settings, env=env, log_dir=tmp / "logs", services=SERVICES)
    try:
        stack.start(timeout=600)
        data = asyncio.run(measure(settings, args.runs, tmp, fixture))
    finally:
        stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    summary = report(data, fixture, Console(width=160))
    write_results(args, "plan_drift", summary)
    exit_if_missed(args, summary["plan_target_met"])


if __name__ == "__main__":
    main()
