"""`conceptor dev serve|probe|reset|ports` as a developer (and Tilt) runs them, on real servers."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import asyncpg
import httpx
import pytest
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.worker import Worker

from conceptor.platform.devservices import SERVICES
from conceptor.platform.settings import PORT_OFFSETS
from tests.helpers import wait_until
from tests.integration.serve_helpers import (
    DevEnv,
    children_of,
    data_dir,
    free_prefix,
    group_members,
    stop,
)

pytestmark = pytest.mark.integration

VALID = "postgres, redis, temporal, keycloak, minio, mailpit, front-door, db-tools"


@pytest.fixture
def dev() -> Iterator[DevEnv]:
    """A private prefix and data dir: these tests stop and restart servers at will."""
    with data_dir() as localdev:
        yield DevEnv(prefix=free_prefix(), localdev=localdev)


@pytest.mark.parametrize("command", ["serve", "probe", "reset"])
def test_unknown_service_lists_the_valid_ones(dev: DevEnv, command: str) -> None:
    """A typo in the service name exits 2 and names every valid service."""
    result = dev.run(command, "nope")
    assert result.returncode == 2
    assert result.stderr == f"error: unknown service 'nope'; valid services: {VALID}\n"
    assert list(SERVICES) == VALID.split(", ")


@pytest.mark.parametrize(
    ("service", "port_name"), [("redis", "redis"), ("temporal", "temporal_ui")]
)
def test_serve_refuses_a_port_in_use(dev: DevEnv, service: str, port_name: str) -> None:
    """A taken port (even the second of a service's ports) exits 2 naming port and service."""
    port = dev.settings.port(port_name)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = dev.run("serve", service, timeout=30)
    assert result.returncode == 2
    assert result.stderr == (
        f"error: port {port} ({port_name}) needed by service {service!r} is already in use on "
        f"127.0.0.1: stop whatever listens there (`ss -ltnp 'sport = :{port}'`) "
        "or choose another TILT_PORT_PREFIX\n"
    )
    assert not (dev.localdev / service).exists()


def test_probe_exit_codes(dev: DevEnv) -> None:
    """probe: 1 while the service is down, 0 with what answered once it is up."""
    down = dev.run("probe", "redis")
    assert down.returncode == 1
    assert down.stderr.startswith("error: redis not ready: PING failed: ")
    proc = dev.start("redis")
    try:
        up = dev.run("probe", "redis")
        assert up.returncode == 0
        assert up.stdout.startswith("redis ready: redis 7.")
    finally:
        assert stop(proc) == 0


def test_ports_prints_the_prefix_block(dev: DevEnv) -> None:
    """`dev ports` prints NAME=PORT for every slot of the current prefix, --json the same."""
    base = int(dev.prefix) * 100
    plain = dev.run("ports")
    assert plain.returncode == 0
    lines = plain.stdout.splitlines()
    assert lines[: len(PORT_OFFSETS)] == [f"{n}={base + off}" for n, off in PORT_OFFSETS.items()]
    as_json = json.loads(dev.run("ports", "--json").stdout)
    assert as_json["prefix"] == dev.prefix
    assert {n: as_json["ports"][n] for n in PORT_OFFSETS} == {
        n: base + off for n, off in PORT_OFFSETS.items()
    }


def test_ports_json_carries_the_tiltfile_preflight(dev: DevEnv) -> None:
    """`dev ports --json --check-env --check-tools`, the Tiltfile's one preflight call: no
    refusal and no missing tool here; for a bad environment file, `env check`'s own words, and
    no tool check (as when the two commands ran one after the other)."""
    args = ("ports", "--json", "--check-env", "--check-tools")
    good = json.loads(dev.run(*args).stdout)
    assert (good["environment_error"], good["missing_tools"]) == (None, [])
    assert good["ports"]["keycloak"] == int(dev.prefix) * 100 + PORT_OFFSETS["keycloak"]

    bad = dev.localdev / "environment.yaml"
    bad.write_text(
        "apiVersion: conceptor/v1\n"
        "databases:\n"
        "  - name: billing\n"
        "    migrations: billing/migrations\n"
    )
    refused_env = DevEnv(dev.prefix, dev.localdev, {"CONCEPTOR_ENVIRONMENT_FILE": str(bad)})
    refused = refused_env.run(*args)
    assert refused.returncode == 0, refused.stderr
    out = json.loads(refused.stdout)
    check = subprocess.run(
        [sys.executable, "-m", "conceptor", "env", "check"],
        env=refused_env.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 1
    assert out["environment_error"] == check.stderr.rstrip("\n")
    assert "databases[0].migrations: migrations folder 'billing/migrations'" in check.stderr
    assert "missing_tools" not in out


@pytest.mark.parametrize("service", ["postgres", "redis", "temporal", "mailpit", "front-door"])
def test_sigterm_leaves_no_process_behind(dev: DevEnv, service: str) -> None:
    """SIGTERM to the launcher stops the server's whole process group and frees every port."""
    proc = dev.start(service)
    (server,) = children_of(proc.pid)
    assert group_members(server), "the server runs in its own process group"
    assert dev.listening(service) != []
    assert stop(proc) == 0
    assert group_members(server) == []
    assert dev.listening(service) == []
    assert '"event": "exited"' in dev.log_of(service)


async def _table_rows(dev: DevEnv) -> list[str]:
    conn = await asyncpg.connect(dev.settings.postgres_dsn)
    try:
        return [r["note"] for r in await conn.fetch("SELECT note FROM kept ORDER BY note")]
    finally:
        await conn.close()


async def _create_table(dev: DevEnv) -> None:
    conn = await asyncpg.connect(dev.settings.postgres_dsn)
    try:
        await conn.execute("CREATE TABLE kept (note text)")
        await conn.execute("INSERT INTO kept VALUES ('survives'), ('restarts')")
    finally:
        await conn.close()


def test_postgres_data_survives_restart_and_reset_wipes_it(dev: DevEnv) -> None:
    """A table outlives stop/start; reset refuses while running, then wipes the cluster."""
    proc = dev.start("postgres")
    asyncio.run(_create_table(dev))

    refused = dev.run("reset", "postgres")
    assert refused.returncode == 2
    assert refused.stderr == (
        f"error: postgres is running (port {dev.settings.port('postgres')} in use): "
        "stop it before resetting its data\n"
    )
    assert stop(proc) == 0
    assert dev.listening("postgres") == []

    proc = dev.start("postgres")
    assert asyncio.run(_table_rows(dev)) == ["restarts", "survives"]
    assert stop(proc) == 0

    wiped = dev.run("reset", "postgres")
    assert wiped.returncode == 0
    assert wiped.stdout == f"wiped {dev.localdev / 'postgres'}\n"
    assert not (dev.localdev / "postgres").exists()

    proc = dev.start("postgres")  # a fresh cluster: initdb again, the table is gone
    try:
        with pytest.raises(asyncpg.UndefinedTableError, match='relation "kept" does not exist'):
            asyncio.run(_table_rows(dev))
    finally:
        assert stop(proc) == 0


@activity.defn
async def echo_note(text: str) -> str:
    return f"noted: {text}"


@workflow.defn(sandboxed=False)
class NoteWorkflow:
    @workflow.run
    async def run(self, text: str) -> str:
        return await workflow.execute_activity(
            echo_note, text, start_to_close_timeout=timedelta(seconds=10)
        )


async def _run_note_workflow(dev: DevEnv, workflow_id: str) -> str:
    client = await Client.connect(dev.settings.temporal_address)
    queue = f"test-{uuid.uuid4()}"
    async with Worker(client, task_queue=queue, workflows=[NoteWorkflow], activities=[echo_note]):
        return await client.execute_workflow(
            NoteWorkflow.run,
            "kept",
            id=workflow_id,
            task_queue=queue,
            execution_timeout=timedelta(seconds=30),
        )


async def _listed_after_restart(dev: DevEnv, workflow_id: str) -> tuple[list[str], object, str]:
    client = await Client.connect(dev.settings.temporal_address)
    listed = [wf.id async for wf in client.list_workflows(f"WorkflowId = '{workflow_id}'")]
    handle = client.get_workflow_handle(workflow_id)
    status = (await handle.describe()).status
    return listed, status, await handle.result()


def test_temporal_history_survives_restart(dev: DevEnv) -> None:
    """A completed workflow is still listed, completed, with its result, after a restart."""
    workflow_id = f"note-{uuid.uuid4()}"
    proc = dev.start("temporal")
    try:
        assert asyncio.run(_run_note_workflow(dev, workflow_id)) == "noted: kept"
    finally:
        assert stop(proc) == 0
    assert dev.listening("temporal") == []

    proc = dev.start("temporal")
    try:
        listed, status, result = asyncio.run(_listed_after_restart(dev, workflow_id))
    finally:
        assert stop(proc) == 0
    assert listed == [workflow_id]
    assert status == WorkflowExecutionStatus.COMPLETED
    assert result == "noted: kept"


def test_a_killed_launcher_takes_its_server_down(dev: DevEnv) -> None:
    """Even a launcher killed outright (SIGKILL, no clean-up) leaves no server behind."""
    proc = dev.start("redis")
    (server,) = children_of(proc.pid)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    wait_until(lambda: group_members(server) == [], timeout=10, message="redis outlived it")
    assert dev.listening("redis") == []


def test_serve_exits_when_the_server_dies(dev: DevEnv) -> None:
    """If the server itself dies, the launcher exits non-zero instead of hanging (Tilt shows it)."""
    proc = dev.start("redis")
    (server,) = children_of(proc.pid)
    subprocess.run(["kill", "-KILL", str(server)], check=True)
    assert proc.wait(timeout=30) != 0
    assert dev.listening("redis") == []


class _Upstream:
    """A real HTTP server on a free port that records what reached it and answers its name."""

    def __init__(self, name: str) -> None:
        seen: list[dict[str, str]] = []
        self.seen = seen

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(
                    {
                        "path": self.path,
                        "host": self.headers.get("Host", ""),
                        "forwarded_proto": self.headers.get("X-Forwarded-Proto", ""),
                    }
                )
                body = name.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Upstream:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("host", ["localhost", "conceptor.lvh.me"])
def test_front_door_routes_api_and_panel(dev: DevEnv, host: str) -> None:
    """/api/* reaches the API upstream and the rest the panel, Host kept, for both names."""
    with _Upstream("api") as api, _Upstream("panel") as panel:
        dev.extra = {
            "CENTRAL_FRONT_DOOR_API_UPSTREAM": api.address,
            "CENTRAL_FRONT_DOOR_PANEL_UPSTREAM": panel.address,
        }
        port = dev.settings.port("front_door")
        proc = dev.start("front-door")
        try:
            # lvh.me names resolve to 127.0.0.1; connect there and send the name as Host.
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
                headers = {"Host": f"{host}:{port}"}
                api_resp = http.get("/api/media?limit=2", headers=headers)
                panel_resp = http.get("/status/page.html", headers=headers)
                stray = http.get("/api/media", headers={"Host": f"example.com:{port}"})
        finally:
            assert stop(proc) == 0
    assert (api_resp.status_code, api_resp.text) == (200, "api")
    assert (panel_resp.status_code, panel_resp.text) == (200, "panel")
    assert api.seen == [
        {"path": "/api/media?limit=2", "host": f"{host}:{port}", "forwarded_proto": "http"}
    ]
    assert panel.seen == [
        {"path": "/status/page.html", "host": f"{host}:{port}", "forwarded_proto": "http"}
    ]
    assert stray.text == ""  # a host the front-door does not serve reaches no upstream
