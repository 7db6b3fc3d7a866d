"""Stack start-up: `tilt up` to everything ready (cold and warm) vs the slowest service alone.

Each round, interleaved so that the stack and its baseline see the same machine load:

- the stack: `tilt up` as `make up` runs it (local infra, dev-in-tilt: every service, one worker
  per queue, provisioning, the API, the panel, the drift watch), on an empty data directory
  (cold), then again on the same data (warm). Timed from `tilt up` to the moment every resource
  it starts is ready in Tilt's own view (green on the dashboard), read from a watch on Tilt's
  API. When each resource got ready, when each command and server was started, and what
  provisioning's steps took are kept, so the table shows where the time after Keycloak went.
- every service alone, cold and warm, through `conceptor dev serve` (what Tilt runs); db-tools
  with PostgreSQL, without which it is never ready. The slowest alone (Keycloak) is the baseline.

`unit-tests` is a test run, not part of the stack: it is reported on its own and not waited for.
Target: the stack ready within 1.2x the slowest service alone, cold and warm.

Also counted: the machine's busy CPU seconds (every process, /proc/stat) from `tilt up` to
everything ready, and from the slowest service's start to its ready alone. The stack's over
the machine's cores is the soonest any schedule of the same work could be ready: set against
the slowest alone, the floor of the ratio, whatever the order things start in.
"""

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
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from _options import add_options, exit_if_missed, parse_options, write_results
from _proc import machine_busy_seconds
from rich.console import Console
from rich.table import Table

from conceptor.platform.devservices import SERVICES, get_service
from conceptor.platform.devservices.launcher import port_in_use
from conceptor.platform.devservices.stack import LocalStack, stop_process
from conceptor.platform.settings import REPO_ROOT, Settings
from conceptor.platform.tools import cached_tool

PREFIX = "467"
TARGET_RATIO = 1.2
TIMEOUT_S = 400.0
CORES = os.cpu_count() or 1
# Resources `tilt up` does not start (manual), and a test run that is not part of the stack.
NOT_STARTED = {"reset-postgres"}
NOT_WAITED = {"unit-tests"}
# What `tilt up` must at least show before "everything ready" can be said.
EXPECTED = {f"localdev-{s}" for s in SERVICES if s != "db-tools"} | {
    "db-tools",
    "worker-core-0",
    "worker-media-0",
    "provision",
    "api",
    "panel",
    "drift",
}
# A service that is only ready once another one is: started together, timed from the start.
NEEDS = {"db-tools": ["postgres"]}


def _env(localdev: Path, prefix: str) -> dict[str, str]:
    return {
        "TILT_INFRA": "local",
        "TILT_RUNMODE": "dev-in-tilt",
        "TILT_PORT_PREFIX": prefix,
        "CENTRAL_LOCALDEV_DIR": str(localdev),
        "CENTRAL_LOG_FORMAT": "json",
        # No usage data from a benchmark's Tilt, whatever the Tiltfile says.
        "TILT_DISABLE_ANALYTICS": "1",
    }


def _ready(status: dict[str, Any]) -> bool:
    """Green on the dashboard: its last update (command, or server start) and its readiness."""
    update = status.get("updateStatus")
    runtime = status.get("runtimeStatus")
    return update in ("ok", "not_applicable") and runtime in ("ok", "not_applicable")


class TiltWatch:
    """`tilt get uiresources --watch`: when each resource got ready, and the moment all were."""

    def __init__(self, tilt: Path, port: int, env: dict[str, str], started: float) -> None:
        self.tilt, self.port, self.env, self.started = tilt, port, env, started
        self.status: dict[str, dict[str, Any]] = {}
        self.ready_at: dict[str, float] = {}
        self.all_ready_at: float | None = None
        self.proc: subprocess.Popen[str] | None = None
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)

    def start(self, deadline: float) -> None:
        """Watch as soon as Tilt's API server answers (a `tilt get` fails until then)."""
        argv = [str(self.tilt), "get", "uiresources", "--watch", "-o", "json"]
        argv += ["--port", str(self.port)]
        while True:
            proc = subprocess.Popen(
                argv,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                start_new_session=True,
            )
            assert proc.stdout is not None
            first = proc.stdout.read(1)  # the first object of the listing, or EOF on failure
            if first:
                self.proc, self._first = proc, first
                self.thread.start()
                return
            proc.wait()
            if time.monotonic() > deadline:
                msg = "Tilt's API server never answered `tilt get uiresources`"
                raise TimeoutError(msg)
            time.sleep(0.1)

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        decoder = json.JSONDecoder()
        buffer = self._first
        # One JSON object after another (pretty-printed): decode each as soon as it is whole.
        for line in self.proc.stdout:
            buffer += line
            while True:
                buffer = buffer.lstrip()
                try:
                    obj, end = decoder.raw_decode(buffer)
                except json.JSONDecodeError:
                    break
                buffer = buffer[end:]
                self._update(obj)

    def _update(self, obj: dict[str, Any]) -> None:
        now = time.monotonic() - self.started
        items = obj.get("items") if obj.get("kind", "").endswith("List") else [obj]
        with self.changed:
            for item in items or []:
                name = item["metadata"]["name"]
                status = item.get("status", {})
                self.status[name] = status
                if _ready(status):
                    self.ready_at.setdefault(name, now)
            if self.all_ready_at is None and self._all_ready():
                self.all_ready_at = now
            self.changed.notify_all()

    def _all_ready(self) -> bool:
        names = set(self.status)
        if not names >= EXPECTED:
            return False
        waited = names - NOT_STARTED - NOT_WAITED
        return all(_ready(self.status[n]) for n in waited)

    def finished(self, name: str) -> bool:
        """A command's run is over, green or red."""
        return self.status.get(name, {}).get("updateStatus") in ("ok", "error")

    def wait(self, condition: str, deadline: float) -> None:
        """Until all are ready ('all'), or until a command's run is over (its name)."""
        with self.changed:
            while not (
                self.all_ready_at is not None if condition == "all" else self.finished(condition)
            ):
                left = deadline - time.monotonic()
                if left <= 0:
                    pending = sorted(
                        n for n, s in self.status.items() if not _ready(s) and n not in NOT_STARTED
                    )
                    msg = f"not ready after {TIMEOUT_S:.0f}s: {pending}"
                    raise TimeoutError(msg)
                self.changed.wait(timeout=min(left, 1.0))

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM, timeout=10)


def _micro(value: str | None, wall_start: float) -> float | None:
    """A Tilt timestamp (RFC 3339) as seconds since `tilt up` started."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() - wall_start


def _starts(tilt: Path, port: int, env: dict[str, str], wall_start: float) -> dict[str, float]:
    """When Tilt began each resource's current update (its command, or its server's start)."""
    out = subprocess.run(
        [str(tilt), "get", "uiresources", "-o", "json", "--port", str(port)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    starts: dict[str, float] = {}
    for item in json.loads(out.stdout)["items"]:
        history = item.get("status", {}).get("buildHistory") or []
        at = _micro(history[-1].get("startTime") if history else None, wall_start)
        if at is not None:
            starts[item["metadata"]["name"]] = at
    return starts


async def _provision_steps(settings: Settings, wall_start: float) -> dict[str, float]:
    """The provisioning run's start and end, and each step's duration, from Temporal."""
    from conceptor.client.provisioning import provision_status
    from conceptor.platform.temporal import connect

    client = await connect(settings)
    status = await provision_status(client)
    desc = await client.get_workflow_handle(status.workflow_id).describe()
    out = {f"step {s.step}": s.duration_seconds or 0.0 for s in status.steps}
    out["workflow started"] = desc.start_time.timestamp() - wall_start
    if desc.close_time is not None:
        out["workflow closed"] = desc.close_time.timestamp() - wall_start
    return out


def time_tilt_up(
    settings: Settings,
    localdev: Path,
    tilt: Path,
    *,
    repo: Path = REPO_ROOT,
    extra_env: dict[str, str] | None = None,
    unit_tests: bool = True,
) -> dict[str, Any]:
    """`tilt up` in `repo` → everything ready (then unit-tests); Tilt is stopped (it stops its
    servers). Another checkout's code runs with `extra_env` (its PYTHONPATH)."""
    env = {**os.environ, **_env(localdev, settings.port_prefix), **(extra_env or {})}
    port = 10000 + int(settings.port_prefix)
    log = (localdev.parent / f"tilt-{localdev.name}.log").open("ab")
    wall_start, started, busy = time.time(), time.monotonic(), machine_busy_seconds()
    proc = subprocess.Popen(
        [str(tilt), "up", "--stream", "--port", str(port)],
        cwd=repo,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    watch = TiltWatch(tilt, port, env, started)
    deadline = started + TIMEOUT_S
    try:
        watch.start(deadline)
        watch.wait("all", deadline)
        busy = machine_busy_seconds() - busy
        if unit_tests:
            watch.wait("unit-tests", deadline)
        starts = _starts(tilt, port, env, wall_start)
        # Provisioning's own timings are read with this checkout's client: its own runs only.
        steps = asyncio.run(_provision_steps(settings, wall_start)) if repo == REPO_ROOT else {}
    finally:
        watch.stop()
        stop_process(proc, signal.SIGINT, timeout=90)
        log.close()
    _wait_ports_free(settings)
    assert watch.all_ready_at is not None
    return {
        "load_average": os.getloadavg()[0],
        "ready_s": watch.all_ready_at,
        "cpu_busy_s": busy,
        "unit_tests_s": watch.ready_at.get("unit-tests"),
        "unit_tests": watch.status.get("unit-tests", {}).get("updateStatus"),
        "ready_at": watch.ready_at,
        "started_at": starts,
        "provision": steps,
    }


def _wait_ports_free(settings: Settings, timeout: float = 60) -> None:
    """The next run must start from nothing: wait until no service port of the block listens."""
    deadline = time.monotonic() + timeout
    ports = [settings.port(p) for svc in SERVICES for p in get_service(svc).ports]
    ports += [settings.port(p) for p in ("api", "panel")]
    while any(port_in_use(settings.host, p) for p in ports):
        if time.monotonic() > deadline:
            msg = f"ports of prefix {settings.port_prefix} still in use {timeout}s after Tilt"
            raise RuntimeError(msg)
        time.sleep(0.2)


def time_single(settings: Settings, localdev: Path, name: str) -> tuple[float, float]:
    """`conceptor dev serve <name>` alone (with what it needs) → ready: seconds, and the
    machine's busy CPU seconds until then."""
    env = _env(localdev, settings.port_prefix)
    services = [*NEEDS.get(name, []), name]
    stack = LocalStack(settings, env=env, log_dir=localdev / "logs", services=services)
    busy = machine_busy_seconds()
    try:
        ready = stack.start(timeout=TIMEOUT_S)[name]
        return ready, machine_busy_seconds() - busy
    finally:
        stack.stop()


def _median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for run in runs for k in run})
    return {k: statistics.median(run[k] for run in runs if k in run) for k in keys}


def report(samples: dict[str, Any], runs: int) -> dict[str, Any]:
    alone = {k: statistics.median(v) for k, v in samples["alone"].items()}
    stack = {kind: [r["ready_s"] for r in samples[kind]] for kind in ("cold", "warm")}
    out: dict[str, Any] = {"runs": runs, "load_average": os.getloadavg(), "samples": samples}
    table = Table(title=f"Stack start-up, median of {runs} (target: <= {TARGET_RATIO}x slowest)")
    for col in ("measurement", "median s", "runs s"):
        table.add_column(col, justify="left" if col == "measurement" else "right")
    out["ratios"], out["slowest"], out["medians"] = {}, {}, {}
    for kind in ("cold", "warm"):
        singles = {n: alone[f"{n} {kind}"] for n in SERVICES}
        slowest = max(singles, key=lambda n: singles[n])
        median = statistics.median(stack[kind])
        out["medians"][f"stack {kind}"] = median
        out["slowest"][kind] = slowest
        out["ratios"][kind] = median / singles[slowest]
        services = [
            max(t for n, t in r["ready_at"].items() if n.startswith("localdev-") or n == "db-tools")
            for r in samples[kind]
        ]
        table.add_row(
            f"stack {kind}: services ready", f"{statistics.median(services):.2f}", _runs(services)
        )
        table.add_row(f"stack {kind}: everything ready", f"{median:.2f}", _runs(stack[kind]))
        tests = [r["unit_tests_s"] for r in samples[kind] if r["unit_tests_s"] is not None]
        if tests:
            table.add_row("  then unit-tests green", f"{statistics.median(tests):.2f}", "")
        for name in SERVICES:
            table.add_row(
                f"{name} alone {kind}",
                f"{singles[name]:.2f}",
                _runs(samples["alone"][f"{name} {kind}"]),
            )
        table.add_row(f"[bold]ratio {kind} (vs {slowest} alone)", f"{out['ratios'][kind]:.2f}", "")
        # The machine's busy CPU seconds until everything was ready, over its cores: no
        # schedule of the same work can be ready sooner (the floor of the ratio).
        cpu = statistics.median(r["cpu_busy_s"] for r in samples[kind])
        cpu_alone = statistics.median(samples["alone_cpu"][f"{slowest} {kind}"])
        floor = cpu / CORES / singles[slowest]
        out.setdefault("cpu", {})[kind] = {
            "stack_busy_s": cpu,
            "slowest_alone_busy_s": cpu_alone,
            "cores": CORES,
            "floor_ratio": floor,
        }
        table.add_row(
            f"  CPU busy: stack {kind} / {slowest} alone (s)", f"{cpu:.1f} / {cpu_alone:.1f}", ""
        )
        table.add_row(f"  floor: stack CPU / {CORES} cores / {slowest} alone", f"{floor:.2f}", "")
    Console(width=120).print(table)
    for kind in ("cold", "warm"):
        out[f"timeline_{kind}"] = timeline(samples[kind], kind)
    out["target_ratio"] = TARGET_RATIO
    out["target_met"] = all(r <= TARGET_RATIO for r in out["ratios"].values())
    return out


def _runs(values: list[float]) -> str:
    return " ".join(f"{v:.2f}" for v in values)


def timeline(runs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """Median start and ready time of each resource, and provisioning's steps, in order."""
    ready = _median_of([r["ready_at"] for r in runs])
    started = _median_of([r["started_at"] for r in runs])
    steps = _median_of([r["provision"] for r in runs])
    table = Table(title=f"Stack {kind}: when each resource started and got ready (median s)")
    for col in ("resource", "started", "ready"):
        table.add_column(col, justify="left" if col == "resource" else "right")
    for name in sorted(ready, key=lambda n: ready[n]):
        table.add_row(name, f"{started[name]:.2f}" if name in started else "", f"{ready[name]:.2f}")
    Console(width=120).print(table)
    print(
        f"provisioning ({kind}): "
        + ", ".join(f"{k.removeprefix('step ')} {v:.2f}" for k, v in steps.items())
    )
    return {"ready": ready, "started": started, "provision": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_options(parser, runs=3)
    parser.add_argument("--prefix", default=PREFIX, help="port prefix (Tilt's port: 10000+it)")
    args = parse_options(parser)
    tilt = cached_tool("tilt", "TILT_VERSION", "bin/tilt")
    settings = Settings(port_prefix=args.prefix)
    root = Path(tempfile.mkdtemp(prefix="conceptor-bench-startup-"))
    root.chmod(0o755)  # PostgreSQL runs as `postgres` and must reach its data dir
    samples: dict[str, Any] = {"cold": [], "warm": [], "alone": {}, "alone_cpu": {}}
    for name in SERVICES:
        for kind in ("cold", "warm"):
            samples["alone"][f"{name} {kind}"] = []
            samples["alone_cpu"][f"{name} {kind}"] = []
    failed = True
    try:
        # Interleaved, so that the stack and its baseline see the same machine load.
        for run in range(args.runs):
            localdev = root / f"stack-{run}"
            localdev.mkdir()
            localdev.chmod(0o755)
            samples["cold"].append(time_tilt_up(settings, localdev, tilt))
            samples["warm"].append(time_tilt_up(settings, localdev, tilt))
            for name in SERVICES:
                localdev = root / f"single-{name}-{run}"
                for kind in ("cold", "warm"):
                    seconds, busy = time_single(settings, localdev, name)
                    samples["alone"][f"{name} {kind}"].append(seconds)
                    samples["alone_cpu"][f"{name} {kind}"].append(busy)
        failed = False
    finally:
        if failed:
            print(f"logs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    summary = report(samples, args.runs)
    write_results(args, "stack_startup", summary)
    exit_if_missed(args, summary["target_met"])


if __name__ == "__main__":
    main()
