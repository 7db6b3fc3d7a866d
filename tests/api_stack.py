"""Fixtures of the API layer: api/panel/workers as real subprocesses, provisioning, tokens.

Load with `pytest_plugins = ["tests.api_stack"]`; plain helpers live in tests/api_helpers.py."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from functools import partial
from typing import Any

import httpx
import jwt
import pytest

from conceptor.platform.devservices.stack import LocalStack
from conceptor.platform.queues import worker_port
from conceptor.platform.settings import Settings
from tests.api_helpers import LOG_DIR, ApiStack, Processes, answers, dev_user, password_token
from tests.helpers import wait_until


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
        lambda: app_processes.alive("api") and answers(f"{front}/api/health"),
        timeout=60,
        message=f"API not answering through the front-door; log in {LOG_DIR}/api.log",
    )
    wait_until(
        lambda: app_processes.alive("panel") and answers(f"{front}/"),
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

    def polling(queue: str) -> bool:
        url = f"http://{settings.host}:{worker_port(settings, queue, 0)}/readyz"
        return app_processes.alive(f"worker-{queue}-0") and answers(url)

    for queue in ("core", "media"):
        wait_until(
            partial(polling, queue),
            timeout=90,
            message=f"worker {queue}-0 never became ready; log in {LOG_DIR}/worker-{queue}-0.log",
        )


async def _provision(settings: Settings) -> Any:
    from conceptor.client.provisioning import provision_status, start_provision
    from conceptor.platform.temporal import connect

    client = await connect(settings)
    await start_provision(client)
    deadline = time.monotonic() + 240
    while True:
        status = await provision_status(client)
        if status.state in ("completed", "failed"):
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


@pytest.fixture
def admin_token(settings: Settings, provisioned: Any) -> str:
    """A fresh token of the dev user holding platform-admin."""
    return password_token(settings, dev_user(settings, admin=True))


@pytest.fixture
def user_token(settings: Settings, provisioned: Any) -> str:
    """A fresh token of the dev user without platform-admin."""
    return password_token(settings, dev_user(settings, admin=False))


@pytest.fixture(scope="session")
def expired_token(settings: Settings, provisioned: Any) -> Iterator[str]:
    """A token the realm itself issued with a 1 s lifespan (a throwaway client), now expired."""
    from conceptor.platform.keycloak_tokens import admin_token as kc_admin_token

    client_id = f"test-expiry-{uuid.uuid4()}"
    admin = asyncio.run(_kc_admin(settings, kc_admin_token))
    base = f"{settings.keycloak_url}/admin/realms/{settings.realm_name}/clients"
    headers = {"authorization": f"Bearer {admin}"}
    created = httpx.post(
        base,
        headers=headers,
        json={
            "clientId": client_id,
            "publicClient": True,
            "directAccessGrantsEnabled": True,
            "standardFlowEnabled": False,
            "attributes": {"access.token.lifespan": "1"},
            "protocolMappers": [
                {
                    "name": "api-audience",
                    "protocol": "openid-connect",
                    "protocolMapper": "oidc-audience-mapper",
                    "config": {
                        "included.client.audience": settings.api_client_id,
                        "access.token.claim": "true",
                    },
                }
            ],
        },
        timeout=10,
    )
    assert created.status_code == 201, created.text
    try:
        user = dev_user(settings, admin=True)
        resp = httpx.post(
            f"{settings.keycloak_issuer}/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": client_id,
                "username": user.username,
                "password": user.password,
            },
            timeout=10,
        )
        assert resp.status_code == 200, resp.text
        token = str(resp.json()["access_token"])
        exp = jwt.decode(token, options={"verify_signature": False})["exp"]
        assert exp - time.time() < 5, "the 1 s lifespan was not applied"
        wait_until(lambda: time.time() > exp + 1, timeout=10)
        yield token
    finally:
        # Admin tokens of the master realm live a minute: take a fresh one to clean up.
        headers = {"authorization": f"Bearer {asyncio.run(_kc_admin(settings, kc_admin_token))}"}
        found = httpx.get(base, params={"clientId": client_id}, headers=headers, timeout=10)
        found.raise_for_status()
        for entry in found.json():
            deleted = httpx.delete(f"{base}/{entry['id']}", headers=headers, timeout=10)
            assert deleted.status_code == 204, deleted.text


async def _kc_admin(settings: Settings, get_token: Any) -> str:
    async with httpx.AsyncClient(timeout=10) as http:
        return str(await get_token(settings, http))
