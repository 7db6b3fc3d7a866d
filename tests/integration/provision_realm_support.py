"""Realm reconciler test support: run `import_realm` in-process, drive Keycloak's admin API."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from temporalio.testing import ActivityEnvironment

from conceptor.activities.keycloak import KeycloakActivities
from conceptor.contracts import PlanDigests, ReconcileInput, StepResult
from conceptor.platform.keycloak_tokens import admin_token
from conceptor.platform.settings import Settings
from tests.integration.provision_support import ProvisionEnv, isolated_env


def q(value: str) -> str:
    return quote(value, safe="")


@dataclass
class Run:
    """One import: its result and the admin calls that wrote something."""

    result: StepResult
    writes: list[str]


async def import_realm(
    env: ProvisionEnv,
    *,
    plan: bool = False,
    expected: PlanDigests | None = None,
    **settings: Any,
) -> Run:
    """The activity itself (as a worker runs it), on this environment's realm and file."""
    acts = KeycloakActivities(env.settings.model_copy(update=settings))
    data = ReconcileInput(plan=plan, expected=expected)
    result = await ActivityEnvironment().run(acts.import_realm, data)
    return Run(result, acts.last_writes)


class Admin:
    """The test's own admin client for one realm (drift, checks, exports)."""

    def __init__(self, settings: Settings, realm: str, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.base = f"{settings.keycloak_url}/admin/realms/{q(realm)}"
        self.http = http
        self.token = ""

    async def call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        if not self.token:
            self.token = await admin_token(self.settings, self.http)
        return await self.http.request(
            method, self.base + path, json=body, headers={"Authorization": f"Bearer {self.token}"}
        )

    async def json(self, path: str) -> Any:
        resp = await self.call("GET", path)
        assert resp.status_code == 200, (path, resp.status_code, resp.text)
        return resp.json()

    async def ok(self, method: str, path: str, body: Any = None) -> httpx.Response:
        resp = await self.call(method, path, body)
        assert resp.status_code in (200, 201, 204), (method, path, resp.status_code, resp.text)
        return resp

    async def client_id(self, client_id: str) -> str:
        found = await self.json(f"/clients?clientId={q(client_id)}")
        return str(found[0]["id"])

    async def user_id(self, username: str) -> str:
        found = await self.json(f"/users?username={q(username)}&exact=true")
        return str(found[0]["id"])

    async def group_id(self, path: str) -> str:
        found = await self.json(
            f"/group-by-path/{'/'.join(q(p) for p in path.strip('/').split('/'))}"
        )
        return str(found["id"])

    async def partial_export(self) -> dict[str, Any]:
        resp = await self.ok("POST", "/partial-export?exportClients=true&exportGroupsAndRoles=true")
        data: dict[str, Any] = resp.json()
        return data

    async def admin_events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = await self.json("/admin-events?first=0&max=10000")
        return events


@asynccontextmanager
async def realm_env(
    settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[ProvisionEnv, Admin]]:
    """An isolated environment (a fresh realm name and a copy of technova.json) and an admin."""
    async with isolated_env(settings, tmp_path) as env, httpx.AsyncClient(timeout=60) as http:
        yield env, Admin(env.settings, env.realm, http)


def edit_file(env: ProvisionEnv, change: Any) -> dict[str, Any]:
    """Load the environment's realm file, let `change` edit it, write it back."""
    path = env.settings.realm_file
    assert path is not None
    data: dict[str, Any] = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False))
    return data


def shuffled(value: Any, rng: random.Random) -> Any:
    """Every list at every depth in another order."""
    if isinstance(value, dict):
        return {k: shuffled(v, rng) for k, v in value.items()}
    if isinstance(value, list):
        items = [shuffled(v, rng) for v in value]
        rng.shuffle(items)
        return items
    return value


def sorted_lists(node: Any) -> Any:
    """Set-valued lists in a fixed order (Keycloak returns them in no fixed order)."""
    if isinstance(node, dict):
        return {k: sorted_lists(v) for k, v in node.items()}
    if isinstance(node, list):
        items = [sorted_lists(v) for v in node]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    return node
