"""Keycloak's admin API as the realm benchmarks use it: an admin's headers, a realm deleted."""

from __future__ import annotations

from urllib.parse import quote

import httpx

from conceptor.platform.keycloak_tokens import AdminTokens
from conceptor.platform.settings import Settings


class RealmAdmin:
    """`/admin/realms` of one Keycloak, with an admin token cached across calls."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.http = http
        self.tokens = AdminTokens(settings)
        self.url = f"{settings.keycloak_url}/admin/realms"

    async def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.tokens.get(self.http)}"}

    async def delete(self, name: str) -> None:
        """The realm gone (absent already is fine)."""
        resp = await self.http.delete(
            f"{self.url}/{quote(name, safe='')}", headers=await self.headers()
        )
        if resp.status_code not in (204, 404):
            msg = f"DELETE realm {name}: HTTP {resp.status_code} {resp.text[:300]}"
            raise RuntimeError(msg)
