"""A minimal Keycloak admin REST client: an admin token, JSON calls, precise errors."""

from __future__ import annotations

from typing import Any

import httpx
from temporalio.exceptions import ApplicationError

from conceptor.platform.keycloak_tokens import AdminTokens
from conceptor.platform.settings import Settings

REALM_REJECTED = "RealmRejected"


class KeycloakError(RuntimeError):
    """A transient or unexpected answer (retryable)."""


class KeycloakAdmin:
    """Calls `/admin/realms/...` with a token of the master realm's admin user."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient, tokens: AdminTokens) -> None:
        self.settings = settings
        self.http = http
        self.tokens = tokens

    async def call(
        self, method: str, path: str, *, json: Any = None, ok: tuple[int, ...] = (200, 201, 204)
    ) -> httpx.Response:
        """One admin call; 400-class answers other than `ok` (and 401) are non-retryable."""
        url = f"{self.settings.keycloak_url}/admin{path}"
        token = await self.tokens.get(self.http)
        resp = await self.http.request(method, url, json=json, headers=_bearer(token))
        if resp.status_code == 401:  # expired or revoked (Keycloak restarted): grant once more
            token = await self.tokens.grant(self.http)
            resp = await self.http.request(method, url, json=json, headers=_bearer(token))
        if resp.status_code in ok:
            return resp
        detail = resp.text[:500]
        msg = f"Keycloak answered {method} {path} with HTTP {resp.status_code}: {detail}"
        if 400 <= resp.status_code < 500 and resp.status_code not in (401, 408, 429):
            raise ApplicationError(msg, type=REALM_REJECTED, non_retryable=True)
        raise KeycloakError(msg)

    async def get_json(self, path: str) -> Any:
        return (await self.call("GET", path)).json()

    async def find(self, path: str) -> Any | None:
        """GET that maps 404 to None."""
        resp = await self.call("GET", path, ok=(200, 404))
        return None if resp.status_code == 404 else resp.json()

    async def create(self, path: str, body: Any) -> bool:
        """POST; True if created, False on 409 (someone else created it meanwhile)."""
        resp = await self.call("POST", path, json=body, ok=(200, 201, 204, 409))
        return resp.status_code != 409


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
