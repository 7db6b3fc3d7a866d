"""The master realm admin's access token: one password grant, and a cache that outlives it."""

from __future__ import annotations

import time

import httpx

from conceptor.platform.settings import Settings

# Renew this long before Keycloak says the token expires: a call must not race its expiry.
_EXPIRY_MARGIN_SECONDS = 10.0


class AdminTokenRefusedError(RuntimeError):
    """Keycloak answered the admin's password grant with something else than a token."""


async def grant_admin_token(settings: Settings, http: httpx.AsyncClient) -> tuple[str, float]:
    """A fresh admin token and its lifetime in seconds (raises AdminTokenRefusedError)."""
    resp = await http.post(
        f"{settings.keycloak_url}/realms/master/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": "admin-cli",
            "username": settings.keycloak_admin_user,
            "password": settings.keycloak_admin_password.get_secret_value(),
        },
    )
    if resp.status_code != 200:
        msg = (
            f"admin token refused by {settings.keycloak_url}: "
            f"HTTP {resp.status_code} {resp.text[:200]}"
        )
        raise AdminTokenRefusedError(msg)
    body = resp.json()
    return str(body["access_token"]), float(body.get("expires_in", 60))


async def admin_token(settings: Settings, http: httpx.AsyncClient) -> str:
    """A fresh admin token (for one-off callers: probes, tests)."""
    token, _ = await grant_admin_token(settings, http)
    return token


class AdminTokens:
    """The admin's token, kept until shortly before it expires.

    A password grant costs Keycloak a password hash (~0.5 s); a warm re-run must not pay it.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._token: str | None = None
        self._expires = 0.0

    def cached(self) -> str | None:
        return self._token if time.monotonic() < self._expires else None

    def forget(self) -> None:
        self._token = None
        self._expires = 0.0

    async def grant(self, http: httpx.AsyncClient) -> str:
        token, lifetime = await grant_admin_token(self.settings, http)
        self._token = token
        self._expires = time.monotonic() + lifetime - _EXPIRY_MARGIN_SECONDS
        return token

    async def get(self, http: httpx.AsyncClient) -> str:
        return self.cached() or await self.grant(http)
