"""Access tokens for the realm's dev users (password grant): for scripts, benchmarks, tests."""

from __future__ import annotations

import httpx

from conceptor.platform.settings import Settings


class TokenRefusedError(RuntimeError):
    """Keycloak did not issue the token (wrong user, password, client secret, or no realm)."""


def password_grant_token(settings: Settings, username: str, password: str) -> str:
    """An access token for a dev user, through the confidential API client's password grant."""
    resp = httpx.post(
        f"{settings.keycloak_issuer}/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": settings.api_client_id,
            "client_secret": settings.api_client_secret.get_secret_value(),
            "username": username,
            "password": password,
            "scope": "openid",
        },
        timeout=10,
    )
    if resp.status_code != 200:
        msg = (
            f"Keycloak refused a token for {username!r}: HTTP {resp.status_code} {resp.text[:300]}"
        )
        raise TokenRefusedError(msg)
    return str(resp.json()["access_token"])
