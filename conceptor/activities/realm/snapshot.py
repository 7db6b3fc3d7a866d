"""Read the live realm in the file's shape: Keycloak's partial export, plus users and secrets."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from conceptor.activities.keycloak_admin import KeycloakAdmin

_READS_AT_ONCE = 8  # concurrent reads per realm: fast, without flooding a dev Keycloak


def q(value: str) -> str:
    """One URL path segment: accents, `+`, spaces and `/` quoted."""
    return quote(value, safe="")


async def read_live(
    admin: KeycloakAdmin, realm: str, *, secrets_of: set[str]
) -> dict[str, Any] | None:
    """The live realm as a representation (None when absent); client secrets of `secrets_of`."""
    base = f"/realms/{q(realm)}"
    if await admin.find(base) is None:
        return None
    export = await admin.read(
        "POST", f"{base}/partial-export?exportClients=true&exportGroupsAndRoles=true"
    )
    rep: dict[str, Any] = export.json()
    limit = asyncio.Semaphore(_READS_AT_ONCE)

    async def secret(client: dict[str, Any]) -> None:
        async with limit:
            found = await admin.get_json(f"{base}/clients/{client['id']}/client-secret")
        client["secret"] = found.get("value")

    async def links(user: dict[str, Any]) -> None:
        path = f"{base}/users/{user['id']}"
        async with limit:
            roles, groups = await asyncio.gather(
                admin.get_json(f"{path}/role-mappings"),
                admin.get_json(f"{path}/groups?briefRepresentation=true"),
            )
        user["realmRoles"] = [r["name"] for r in roles.get("realmMappings", [])]
        user["clientRoles"] = {
            c["client"]: [r["name"] for r in c.get("mappings", [])]
            for c in (roles.get("clientMappings") or {}).values()
        }
        user["groups"] = [g["path"] for g in groups]

    users = await admin.get_json(f"{base}/users?briefRepresentation=false&first=0&max=1000000")
    hidden = [u for u in rep.get("users", []) if u.get("serviceAccountClientId")]
    rep["users"] = [u for u in users if not u.get("serviceAccountClientId")] + hidden
    masked = [
        c for c in rep.get("clients", [])
        if c.get("clientId") in secrets_of and not c.get("publicClient") and c.get("id")
    ]  # fmt: skip
    await asyncio.gather(
        *(secret(c) for c in masked),
        *(links(u) for u in rep["users"] if not u.get("serviceAccountClientId")),
    )
    return rep
