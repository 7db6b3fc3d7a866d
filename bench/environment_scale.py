"""Provisioning a larger declared stack: 5 databases, 3 realms and 4 queues against the default.

Runs its own PostgreSQL, Redis, Temporal, Keycloak and MinIO (port prefix 475, throwaway data)
and an in-process core worker. Each round, alternating which goes first, in the same run:

- the default stack: an environment file as the shipped one declares it (one database with
  the platform's migrations, one realm, the queues `core` and `media`), on a fresh database,
  realm and buckets;
- the larger stack: the same plus four more databases (each created by its own
  `migrate_postgres:<db>` chain and migrated with the same migrations), two more realms (copies
  of the shipped realm under other names, each its own `import_realm:<realm>`) and two more
  queues. Queues add workers, not provisioning steps: they are declared so that the file is
  the one the target speaks of, and the graph is checked to hold no step for them.

Each first run is timed from start to result, then a re-run (which must say `unchanged`
everywhere). Target: the larger stack's first run and re-run within 1.5x the default's
(medians of --runs). Everything a round created is dropped after it.

In the same rounds, Keycloak alone: its own `POST /admin/realms` of the shipped realm, once,
and of three copies at once (what the larger stack asks of it). From those comes the floor:
the larger stack's first run if everything but the realm creations took no longer than in
the default one (default first run - one POST + three POSTs), over the default's first run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from _keycloak import RealmAdmin
from _options import add_options, exit_if_missed, parse_options, verdict, write_results
from _stack import stack_env  # bench/_stack.py: run as `python bench/<name>.py`
from provision import timed_run
from rich.console import Console
from rich.table import Table
from temporalio.client import Client

from conceptor.activities.realm_file import load_realm
from conceptor.platform.devservices.stack import LocalStack
from conceptor.platform.environment import FILE_VARIABLE
from conceptor.platform.keycloak_tokens import admin_token
from conceptor.platform.settings import REPO_ROOT, Settings
from conceptor.platform.temporal import connect

sys.path.insert(0, str(REPO_ROOT))
from tests.integration.provision_support import (
    MIGRATIONS,
    ProvisionEnv,
    in_process_worker,
    isolated_env,
    superuser,
)

PREFIX = "475"
SERVICES = ("postgres", "redis", "temporal", "keycloak", "minio")
EXTRA_DATABASES = 4
EXTRA_REALMS = 2
EXTRA_QUEUES = ("billing", "reports")
TARGET_RATIO = 1.5


class Stack:
    """One declared stack on an isolated environment: its file, and what it adds beyond it."""

    def __init__(self, env: ProvisionEnv, folder: Path, *, large: bool) -> None:
        self.env = env
        self.folder = folder
        self.databases = [f"{env.database}_{k}" for k in range(EXTRA_DATABASES)] if large else []
        self.realms = [f"{env.realm}-{k}" for k in range(EXTRA_REALMS)] if large else []
        self.queues = list(EXTRA_QUEUES) if large else []
        self.file = folder / "environment.yaml"

    def write(self) -> None:
        """The environment file, and a realm file per extra realm (the shipped one, renamed)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        realm = json.loads(self.env.settings.realm_file.read_text())
        for name in self.realms:
            (self.folder / f"{name}.json").write_text(json.dumps({**realm, "realm": name}))
        lines = ["apiVersion: conceptor/v1", "databases:"]
        for name in [self.env.database, *self.databases]:
            lines += [f"  - name: {name}", f"    migrations: {MIGRATIONS}"]
        lines.append("realms:")
        lines += [f"  - name: {self.env.realm}", f"    file: {self.env.settings.realm_file}"]
        for name in self.realms:
            lines += [f"  - name: {name}", f"    file: {name}.json"]
        lines.append("queues:")
        media = "services.central.queue:MEDIA"
        declarations = {"core": "conceptor.workers.declarations:CORE", "media": media}
        for queue, target in (declarations | dict.fromkeys(self.queues, media)).items():
            lines += [f"  - name: {queue}", f"    declaration: {target}"]
        self.file.write_text("\n".join(lines) + "\n")

    async def drop_extras(self) -> None:
        """The extra databases and realms (isolated_env drops its own)."""
        s = self.env.settings
        conn = await superuser(s)
        try:
            for name in self.databases:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
        async with httpx.AsyncClient(timeout=60) as http:
            headers = {"Authorization": f"Bearer {await admin_token(s, http)}"}
            for name in self.realms:
                await http.delete(f"{s.keycloak_url}/admin/realms/{name}", headers=headers)


async def one_stack(client: Client, base: Settings, tmp: Path, *, large: bool) -> dict[str, Any]:
    """A first run and a re-run of one declared stack, on fresh data."""
    name = f"{'large' if large else 'default'}-{uuid.uuid4().hex[:6]}"
    async with isolated_env(base, tmp / name) as env:
        stack = Stack(env, tmp / name / "stack", large=large)
        stack.write()
        os.environ[FILE_VARIABLE] = str(stack.file)  # the worker's activities read it
        try:
            async with in_process_worker(client, env):
                first = await timed_run(client, env)
                rerun = await timed_run(client, env)
        finally:
            await stack.drop_extras()
    first["steps"] = len(first["steps_s"])
    queue_steps = [s for s in first["steps_s"] if any(q in s for q in EXTRA_QUEUES)]
    return {
        "first": first,
        "rerun": rerun,
        "databases": 1 + len(stack.databases),
        "realms": 1 + len(stack.realms),
        "queues": 2 + len(stack.queues),
        "queue_steps": queue_steps,
    }


async def keycloak_alone(settings: Settings, realms: int) -> float:
    """Seconds for Keycloak's own POST of `realms` copies of the shipped realm at once."""
    assert settings.realm_file is not None, "the shipped environment file declares a realm"
    realm = load_realm(settings.realm_file, settings)
    names = [f"alone-{uuid.uuid4().hex[:6]}-{k}" for k in range(realms)]
    async with httpx.AsyncClient(timeout=120) as http:
        admin = RealmAdmin(settings, http)
        headers = await admin.headers()

        async def post(name: str) -> None:
            resp = await http.post(admin.url, json={**realm, "realm": name}, headers=headers)
            if resp.status_code != 201:
                msg = f"POST /admin/realms: HTTP {resp.status_code} {resp.text[:300]}"
                raise RuntimeError(msg)

        started = time.perf_counter()
        try:
            await asyncio.gather(*(post(name) for name in names))
            return time.perf_counter() - started
        finally:
            for name in names:
                await admin.delete(name)


async def measure(settings: Settings, runs: int, tmp: Path) -> dict[str, list[dict[str, Any]]]:
    client = await connect(settings)
    out: dict[str, list[dict[str, Any]]] = {"default": [], "large": [], "alone": []}
    # Warm the worker's caches and Keycloak's JIT on both shapes, untimed.
    for large in (False, True):
        await one_stack(client, settings, tmp, large=large)
    await keycloak_alone(settings, 1 + EXTRA_REALMS)
    for i in range(runs):
        order = (False, True) if i % 2 == 0 else (True, False)
        for large in order:
            run = await one_stack(client, settings, tmp, large=large)
            out["large" if large else "default"].append(run)
            label = "large" if large else "default"
            print(f"  round {i + 1}: {label} first {run['first']['wall_s']:.2f} s, "
                  f"re-run {run['rerun']['wall_s']:.2f} s", flush=True)  # fmt: skip
        counts = (1, 1 + EXTRA_REALMS) if i % 2 == 0 else (1 + EXTRA_REALMS, 1)
        alone = {f"realms_{n}": await keycloak_alone(settings, n) for n in counts}
        out["alone"].append(alone)
        print(f"  round {i + 1}: Keycloak alone, 1 realm {alone['realms_1']:.2f} s, "
              f"{1 + EXTRA_REALMS} at once {alone[f'realms_{1 + EXTRA_REALMS}']:.2f} s",
              flush=True)  # fmt: skip
    return out


def summarize(data: dict[str, list[dict[str, Any]]], console: Console) -> dict[str, Any]:
    def median(which: str, run: str) -> float:
        return float(statistics.median(r[run]["wall_s"] for r in data[which]))

    rows = {
        which: {
            "databases": data[which][0]["databases"],
            "realms": data[which][0]["realms"],
            "queues": data[which][0]["queues"],
            "steps": data[which][0]["first"]["steps"],
            "first_s": median(which, "first"),
            "rerun_s": median(which, "rerun"),
            "reruns_unchanged": all(
                set(r["rerun"]["outcomes"].values()) == {"unchanged"} for r in data[which]
            ),
        }
        for which in ("default", "large")
    }
    first_ratio = rows["large"]["first_s"] / rows["default"]["first_s"]
    rerun_ratio = rows["large"]["rerun_s"] / rows["default"]["rerun_s"]
    many = f"realms_{1 + EXTRA_REALMS}"
    alone = {
        key: float(statistics.median(a[key] for a in data["alone"])) for key in ("realms_1", many)
    }
    # The larger stack's first run if all but the realm creations took what they take in the
    # default one: the best that provisioning can do while Keycloak creates three realms.
    floor = (rows["default"]["first_s"] - alone["realms_1"] + alone[many]) / rows["default"][
        "first_s"
    ]
    table = Table(title=f"provisioning a declared stack (medians of {len(data['default'])})")
    for col in ("stack", "databases", "realms", "queues", "steps", "first run", "re-run"):
        table.add_column(col, justify="right")
    for which, r in rows.items():
        table.add_row(
            which,
            str(r["databases"]),
            str(r["realms"]),
            str(r["queues"]),
            str(r["steps"]),
            f"{r['first_s']:.2f} s",
            f"{r['rerun_s']:.2f} s",
        )
    table.add_row("ratio", "", "", "", "", f"{first_ratio:.2f}x", f"{rerun_ratio:.2f}x")
    console.print(table)
    console.print(
        f"Keycloak alone, its own POST: 1 realm {alone['realms_1']:.2f} s, {1 + EXTRA_REALMS} at "
        f"once {alone[many]:.2f} s ({alone[many] / alone['realms_1']:.2f}x); floor of the first-"
        f"run ratio with every other part as fast as in the default stack: {floor:.2f}x"
    )
    checks = {
        "first_run_ratio": first_ratio <= TARGET_RATIO,
        "rerun_ratio": rerun_ratio <= TARGET_RATIO,
        "reruns_unchanged": rows["default"]["reruns_unchanged"]
        and rows["large"]["reruns_unchanged"],
        "no_step_for_queues": not any(r["queue_steps"] for r in data["large"]),
    }
    judged = verdict(checks, console.print)
    return {
        "runs": len(data["default"]),
        "stacks": rows,
        "first_run_ratio": first_ratio,
        "rerun_ratio": rerun_ratio,
        "keycloak_alone_s": alone,
        "first_run_floor": floor,
        **judged,
        "samples": data,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_options(parser, runs=3)
    parser.add_argument("--prefix", default=PREFIX)
    args = parse_options(parser)
    tmp, env = stack_env("environment-scale", args.prefix)
    settings = Settings()
    stack = LocalStack(settings, env=env, log_dir=tmp / "logs", services=SERVICES)
    # A run stopped with SIGTERM stops its servers too (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        stack.start(timeout=600)
        data = asyncio.run(measure(settings, args.runs, tmp))
    finally:
        stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    summary = summarize(data, Console(width=120))
    write_results(args, "environment_scale", summary)
    exit_if_missed(args, summary["targets_met"])
    # Whatever the load, a re-run changes nothing and queues add no step.
    if not (summary["checks"]["reruns_unchanged"] and summary["checks"]["no_step_for_queues"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
