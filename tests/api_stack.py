"""Fixtures for the API layer: `conceptor api/panel serve` and workers as real subprocesses,
a provisioned realm, and tokens from it (password grant) or forged with another key."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from conceptor.platform.devservices.stack import LocalStack
from conceptor.platform.settings import Settings
from tests.helpers import wait_until

LOG_DIR = Path(__file__).parent / "artifacts" / "api"


class Processes:
    """`python -m conceptor ...` children, logs in tests/artifacts/api, stopped by SIGTERM."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = {**os.environ, **env}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log = open(LOG_DIR / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        proc = subprocess.Popen(
            [sys.executable, "-m", "conceptor", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def alive(self, name: str) -> bool:
        return self.procs[name].poll() is None

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for log in self._logs:
            log.close()


def _answers(url: str, *, host: str | None = None) -> bool:
    try:
        headers = {"host": host} if host else {}
        return httpx.get(url, headers=headers, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass(frozen=True)
class ApiStack:
    """Where the API answers: through the front-door (what users call) and directly."""

    settings: Settings
    front_door: str
    direct: str


@pytest.fixture(scope="session")
def app_processes(stack_env: dict[str, str]) -> Iterator[Processes]:
    procs = Processes(stack_env)
    yield procs
    procs.stop()


@pytest.fixture(scope="session")
def api_stack(local_stack: LocalStack, app_processes: Processes) -> ApiStack:
    """`conceptor api serve` and `conceptor panel serve`, reachable through the front-door."""
    settings = local_stack.settings
    app_processes.spawn("api", "api", "serve")
    app_processes.spawn("panel", "panel", "serve")
    front = f"http://localhost:{settings.port('front_door')}"
    wait_until(
        lambda: app_processes.alive("api") and _answers(f"{front}/api/health"),
        timeout=60,
        message=f"API not answering through the front-door; log in {LOG_DIR}/api.log",
    )
    wait_until(
        lambda: app_processes.alive("panel") and _answers(f"{front}/"),
        timeout=60,
        message=f"panel not answering through the front-door; log in {LOG_DIR}/panel.log",
    )
    return ApiStack(
        settings=settings, front_door=front, direct=f"http://{settings.host}:{settings.port('api')}"
    )


@pytest.fixture(scope="session")
def workers(local_stack: LocalStack, app_processes: Processes) -> None:
    """One core and one media worker process (the real `conceptor worker` command)."""
    for queue in ("core", "media"):
        name = f"worker-{queue}-0"
        if name not in app_processes.procs:
            app_processes.spawn(name, "worker", queue, "--index", "0")
    settings = local_stack.settings
    for queue in ("core", "media"):
        port = settings.worker_port(queue, 0)
        wait_until(
            lambda port=port, q=queue: (
                app_processes.alive(f"worker-{q}-0")
                and _answers(f"http://{settings.host}:{port}/readyz")
            ),
            timeout=90,
            message=f"worker {queue}-0 never became ready; log in {LOG_DIR}/worker-{queue}-0.log",
        )


async def _provision(settings: Settings) -> Any:
    from conceptor.platform.provisioning import provision_status, start_provision
    from conceptor.platform.temporal import connect

    client = await connect(settings)
    await start_provision(client)
    deadline = time.monotonic() + 240
    while True:
        status = await provision_status(client)
        state = getattr(status, "state", None)
        if state in ("completed", "failed", "terminated", "canceled", "timed_out"):
            return status
        if time.monotonic() > deadline:
            msg = f"provisioning not finished within 240s: {status}"
            raise AssertionError(msg)
        await asyncio.sleep(0.5)


@pytest.fixture(scope="session")
def provisioned(api_stack: ApiStack, workers: None) -> Any:
    """The environment provisioned by ProvisionWorkflow on the real core worker."""
    status = asyncio.run(_provision(api_stack.settings))
    assert status.state == "completed", status
    return status


@dataclass(frozen=True)
class DevUser:
    username: str
    password: str
    roles: frozenset[str]


def realm_users(settings: Settings) -> list[DevUser]:
    """The dev users of the realm file, with their plain-text dev passwords."""
    realm = json.loads(settings.realm_file.read_text())
    users = []
    for entry in realm.get("users", []):
        passwords = [
            c["value"] for c in entry.get("credentials", []) if c.get("type") == "password"
        ]
        if passwords:
            roles = frozenset(entry.get("realmRoles", []))
            users.append(DevUser(entry["username"], passwords[0], roles))
    return users


def dev_user(settings: Settings, *, admin: bool) -> DevUser:
    """A dev user holding `platform-admin` (admin=True) or one that does not."""
    for user in realm_users(settings):
        if ("platform-admin" in user.roles) == admin:
            return user
    msg = f"no dev user {'with' if admin else 'without'} platform-admin in {settings.realm_file}"
    raise AssertionError(msg)


def password_token(settings: Settings, user: DevUser) -> str:
    """An access token for `user` from the realm's token endpoint (password grant)."""
    resp = httpx.post(
        f"{settings.keycloak_issuer}/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": settings.api_client_id,
            "client_secret": settings.api_client_secret.get_secret_value(),
            "username": user.username,
            "password": user.password,
            "scope": "openid",
        },
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["access_token"])


@pytest.fixture(scope="session")
def admin_token(settings: Settings, provisioned: Any) -> str:
    """A fresh token of the dev user holding platform-admin."""
    return password_token(settings, dev_user(settings, admin=True))


@pytest.fixture(scope="session")
def user_token(settings: Settings, provisioned: Any) -> str:
    """A fresh token of the dev user without platform-admin."""
    return password_token(settings, dev_user(settings, admin=False))


def forge_token(claims: dict[str, Any], *, kid: str | None = None) -> str:
    """A token signed with a fresh RSA key the realm never saw (kid: reuse a real one or not)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    headers = {"kid": kid or f"forged-{uuid.uuid4()}"}
    return jwt.encode(claims, key, algorithm="RS256", headers=headers)
