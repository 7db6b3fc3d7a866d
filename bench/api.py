"""API throughput: GET /api/health and authenticated GET /api/provision, front-door vs direct;
then GET /api/status (the panel's poll) with the API's PostgreSQL pool vs a connection per request.

Runs wrk (Debian package `wrk`) against the same uvicorn process twice per round — once
through the Caddy front-door, once straight to uvicorn — alternating, and reports medians.
Target: front-door throughput >= 0.7 x direct, with 0 errors.

The pool comparison restarts the API with CENTRAL_API_POSTGRES_POOL_SIZE=0 (the baseline: a
password login per request, as before the pool existed) and with the default pool, alternating,
and reports medians of both; target: the pool is faster, with 0 errors.
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
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _options import add_options, exit_if_missed, parse_options, write_results
from _proc import cpu_seconds, listener_pid  # bench/_proc.py: run as `python bench/<name>.py`
from rich.console import Console
from rich.table import Table

from conceptor.platform.dev_tokens import password_grant_token
from conceptor.platform.devservices.launcher import port_in_use
from conceptor.platform.devservices.stack import LocalStack, stop_process
from conceptor.platform.settings import Settings

PREFIX = "468"
POOL_SIZES = {"connection per request": 0, "pool (default)": Settings().api_postgres_pool_size}
TARGET_RATIO = 0.7
SERVICES = ("postgres", "redis", "temporal", "keycloak", "minio", "front-door")
# wrk prints this JSON line when a run is done (latencies in microseconds).
WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"non_2xx":%d,"socket_errors":%d,'
    .. '"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def _env(settings: Settings) -> dict[str, str]:
    return {
        "TILT_PORT_PREFIX": settings.port_prefix,
        "CENTRAL_LOCALDEV_DIR": str(settings.localdev_dir),
        "CENTRAL_ENVIRONMENT": "test",
        "CENTRAL_LOG_FORMAT": "json",
        "CENTRAL_LOG_LEVEL": "WARNING",
    }


def _spawn(env: dict[str, str], log_dir: Path, name: str, *args: str) -> subprocess.Popen[bytes]:
    log = open(log_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it until exit
    return subprocess.Popen(
        [sys.executable, "-m", "conceptor", *args],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_http(url: str, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    msg = f"{url} did not answer 200 within {timeout}s"
    raise TimeoutError(msg)


async def _provision(settings: Settings) -> None:
    from conceptor.client.provisioning import provision_status, start_provision
    from conceptor.platform.temporal import connect

    client = await connect(settings)
    await start_provision(client)
    deadline = time.monotonic() + 300
    while (status := await provision_status(client)).state == "running":
        if time.monotonic() > deadline:
            raise TimeoutError("provisioning did not finish within 300s")
        await asyncio.sleep(0.5)
    if status.state != "completed":
        msg = f"provisioning ended {status.state}: {status.error}"
        raise RuntimeError(msg)


def _admin_token(settings: Settings) -> str:
    """A token of the realm file's platform-admin dev user."""
    realm = json.loads(settings.realm_file.read_text())
    admin = next(u for u in realm["users"] if "platform-admin" in u.get("realmRoles", []))
    password = next(c["value"] for c in admin["credentials"] if c["type"] == "password")
    return password_grant_token(settings, admin["username"], password)


def wrk(
    url: str, *, token: str | None, seconds: int, connections: int, script: Path
) -> dict[str, Any]:
    """One wrk run; the JSON summary plus requests per second."""
    cmd = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s"]
    cmd += ["-s", str(script)]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    run = subprocess.run(
        [*cmd, url], capture_output=True, text=True, check=True, timeout=seconds + 30
    )
    line = next(x for x in reversed(run.stdout.splitlines()) if x.startswith("{"))
    result: dict[str, Any] = json.loads(line)
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL of the process group after 20 s."""
    stop_process(proc, signal.SIGTERM, timeout=20)


def _pool_report(
    pool_samples: dict[str, list[dict[str, Any]]], args: argparse.Namespace
) -> dict[str, Any]:
    """Medians per setting, the pool's speed-up over the baseline, and a table."""
    if not all(pool_samples.values()):
        return {"meets_target": False, "error": "the pool comparison did not run"}
    entry: dict[str, Any] = {}
    table = Table(
        title=f"GET /api/status straight to uvicorn: median of {args.runs} x {args.seconds}s, "
        f"{args.connections} connections (target: pool rps > connection-per-request rps)"
    )
    for col in ("API database access", "rps", "p50 ms", "p99 ms", "errors", "API CPU µs/req"):
        table.add_column(col, justify="left" if col.startswith("API d") else "right")
    for label, runs in pool_samples.items():
        entry[label] = {
            "pool_size": POOL_SIZES[label],
            "rps": statistics.median(r["rps"] for r in runs),
            "p50_ms": statistics.median(r["p50_us"] for r in runs) / 1000,
            "p99_ms": statistics.median(r["p99_us"] for r in runs) / 1000,
            "errors": sum(r["non_2xx"] + r["socket_errors"] for r in runs),
            "api_cpu_us": statistics.median(r["api_cpu_us"] for r in runs),
            "runs": runs,
        }
        m = entry[label]
        table.add_row(
            label,
            f"{m['rps']:.0f}",
            f"{m['p50_ms']:.2f}",
            f"{m['p99_ms']:.2f}",
            str(m["errors"]),
            f"{m['api_cpu_us']:.0f}",
        )
    base, pool = (entry[label] for label in POOL_SIZES)
    entry["speedup"] = pool["rps"] / base["rps"]
    entry["meets_target"] = entry["speedup"] > 1 and base["errors"] == pool["errors"] == 0
    Console(width=160).print(table)
    print(f"pool / connection-per-request throughput: {entry['speedup']:.2f}x")
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_options(parser, runs=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--prefix", default=PREFIX)
    parser.add_argument(
        "--localdev", help="reuse services already running on --prefix with this data dir"
    )
    args = parse_options(parser)
    if args.quick:
        args.seconds = 1
    if shutil.which("wrk") is None:
        sys.exit("bench/api.py needs wrk: `apt-get install wrk`")

    root = Path(tempfile.mkdtemp(prefix="conceptor-bench-api-"))
    root.chmod(0o755)
    localdev = Path(args.localdev) if args.localdev else root / "localdev"
    settings = Settings(port_prefix=args.prefix, localdev_dir=localdev, environment="test")
    env = _env(settings)
    log_dir = root / "logs"
    log_dir.mkdir()
    stack = LocalStack(settings, env=env, log_dir=log_dir, services=SERVICES)
    procs: list[subprocess.Popen[bytes]] = []
    pool_samples: dict[str, list[dict[str, Any]]] = {label: [] for label in POOL_SIZES}
    script = root / "report.lua"
    script.write_text(WRK_REPORT)
    try:
        if args.localdev and port_in_use(settings.host, settings.port("temporal")):
            asyncio.run(stack.wait_ready(SERVICES, timeout=60))
        else:
            stack.start(timeout=300)
        procs.append(_spawn(env, log_dir, "api", "api", "serve"))
        procs.append(_spawn(env, log_dir, "worker-core-0", "worker", "core", "--index", "0"))
        direct = f"http://{settings.host}:{settings.port('api')}"
        front = f"http://localhost:{settings.port('front_door')}"
        _wait_http(f"{front}/api/health", timeout=60)
        asyncio.run(_provision(settings))
        token = _admin_token(settings)

        cases = {
            "GET /api/health": ("/api/health", None),
            "GET /api/provision": ("/api/provision", token),
        }
        samples: dict[str, dict[str, list[dict[str, Any]]]] = {
            case: {"front-door": [], "direct": []} for case in cases
        }
        pids = {
            "api": listener_pid(settings.port("api")),
            "caddy": listener_pid(settings.port("front_door")),
        }
        for case, (path, bearer) in cases.items():
            # Warm up both routes (connections, JWKS cache, Temporal channel).
            for base in (front, direct):
                wrk(base + path, token=bearer, seconds=1, connections=4, script=script)
            for _ in range(args.runs):
                for route, base in (("direct", direct), ("front-door", front)):
                    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
                    result = wrk(
                        base + path,
                        token=bearer,
                        seconds=args.seconds,
                        connections=args.connections,
                        script=script,
                    )
                    # CPU per request: unlike rps, barely moved by other load on the machine.
                    for name, pid in pids.items():
                        used = cpu_seconds(pid) - before[name]
                        result[f"{name}_cpu_us"] = used * 1e6 / max(result["requests"], 1)
                    samples[case][route].append(result)

        # The panel's poll, with and without the pool: restart the API with each setting.
        direct_status = f"{direct}/api/status"
        for _ in range(args.runs):
            for label, size in POOL_SIZES.items():
                _stop(procs[0])
                # The shared status cache off: every request computes, which is what the pool
                # comparison measures (with it on, nearly every read would be a Redis hit).
                procs[0] = _spawn(
                    {
                        **env,
                        "CENTRAL_API_POSTGRES_POOL_SIZE": str(size),
                        "CENTRAL_API_STATUS_CACHE_SECONDS": "0",
                    },
                    log_dir,
                    "api",
                    "api",
                    "serve",
                )
                _wait_http(f"{direct}/api/health", timeout=60)
                wrk(direct_status, token=None, seconds=1, connections=4, script=script)
                api_pid = listener_pid(settings.port("api"))
                before_cpu = cpu_seconds(api_pid)
                result = wrk(
                    direct_status,
                    token=None,
                    seconds=args.seconds,
                    connections=args.connections,
                    script=script,
                )
                result["api_cpu_us"] = (
                    (cpu_seconds(api_pid) - before_cpu) * 1e6 / max(result["requests"], 1)
                )
                pool_samples[label].append(result)
    finally:
        for proc in procs:
            _stop(proc)
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)

    report: dict[str, Any] = {
        "load_average": os.getloadavg(),
        "runs": args.runs,
        "seconds": args.seconds,
        "connections": args.connections,
        "target_ratio": TARGET_RATIO,
        "cases": {},
    }
    table = Table(
        title=f"API through the front-door vs direct: median of {args.runs} x {args.seconds}s, "
        f"{args.connections} connections (target >= {TARGET_RATIO}x direct rps, 0 errors)"
    )
    cols = ("request", "route", "rps", "p50 ms", "p99 ms", "errors", "API CPU µs/req")
    for col in (*cols, "Caddy CPU µs/req", "front/direct"):
        table.add_column(col, justify="right" if col not in ("request", "route") else "left")
    for case, routes in samples.items():
        entry: dict[str, Any] = {}
        for route, runs in routes.items():
            entry[route] = {
                "rps": statistics.median(r["rps"] for r in runs),
                "p50_ms": statistics.median(r["p50_us"] for r in runs) / 1000,
                "p99_ms": statistics.median(r["p99_us"] for r in runs) / 1000,
                "errors": sum(r["non_2xx"] + r["socket_errors"] for r in runs),
                "api_cpu_us": statistics.median(r["api_cpu_us"] for r in runs),
                "caddy_cpu_us": statistics.median(r["caddy_cpu_us"] for r in runs),
                "runs": runs,
            }
        entry["ratio"] = entry["front-door"]["rps"] / entry["direct"]["rps"]
        entry["meets_target"] = entry["ratio"] >= TARGET_RATIO and all(
            entry[r]["errors"] == 0 for r in routes
        )
        report["cases"][case] = entry
        for route in ("direct", "front-door"):
            m = entry[route]
            table.add_row(
                case,
                route,
                f"{m['rps']:.0f}",
                f"{m['p50_ms']:.2f}",
                f"{m['p99_ms']:.2f}",
                str(m["errors"]),
                f"{m['api_cpu_us']:.0f}",
                f"{m['caddy_cpu_us']:.0f}" if route == "front-door" else "",
                f"{entry['ratio']:.2f}" if route == "front-door" else "",
            )
    Console(width=160).print(table)
    report["status_pool"] = _pool_report(pool_samples, args)
    write_results(args, "api", report)
    met = all(c["meets_target"] for c in report["cases"].values())
    exit_if_missed(args, met and report["status_pool"]["meets_target"])


if __name__ == "__main__":
    main()
