"""Ids of live objects that writes refer to: known from the snapshot, or looked up once."""

from __future__ import annotations

from typing import Any

from conceptor.activities.keycloak_admin import KeycloakAdmin
from conceptor.activities.realm.items import Item, Ref
from conceptor.activities.realm.snapshot import q


class Lookup:
    """Keycloak ids by element, filled from the live items and by what this run creates."""

    def __init__(self, admin: KeycloakAdmin, realm: str, live: dict[tuple[str, str], Item]) -> None:
        self.admin = admin
        self.base = f"/realms/{q(realm)}"
        self.ids: dict[tuple[str, str], str] = {
            key: item.live_id for key, item in live.items() if item.live_id
        }
        self._roles: dict[Ref, dict[str, Any]] = {}
        self._flows: dict[str, str] | None = None

    def remember(self, kind: str, name: str, new_id: str | None) -> None:
        if new_id:
            self.ids[(kind, name)] = new_id

    async def id_of(self, kind: str, name: str) -> str:
        """The id of a group or user, also one that a concurrent run created (our POST got 409)."""
        key = (kind, name)
        if key not in self.ids:
            if kind == "group":
                segments = "/".join(q(p) for p in name.strip("/").split("/"))
                found = await self.admin.find(f"{self.base}/group-by-path/{segments}")
                new_id = found.get("id") if found else None
            else:
                users = await self.admin.get_json(
                    f"{self.base}/users?username={q(name)}&exact=true"
                )
                new_id = next((u["id"] for u in users if u.get("username") == name), None)
            if new_id is None:
                msg = f"{kind} {name!r} was to exist by now, but Keycloak does not have it"
                raise LookupError(msg)
            self.ids[key] = new_id
        return self.ids[key]

    async def client(self, client_id: str) -> str:
        """The internal id of a client, by clientId."""
        key = ("client", client_id)
        if key not in self.ids:
            found = await self.admin.get_json(f"{self.base}/clients?clientId={q(client_id)}")
            match = [c["id"] for c in found if c.get("clientId") == client_id]
            if not match:
                msg = f"client {client_id!r} is referred to, but exists neither in Keycloak nor in the file"  # noqa: E501
                raise LookupError(msg)
            self.ids[key] = match[0]
        return self.ids[key]

    async def scope(self, name: str) -> str:
        key = ("client-scope", name)
        if key not in self.ids:
            found = await self.admin.get_json(f"{self.base}/client-scopes")
            for scope in found:
                self.ids.setdefault(("client-scope", scope["name"]), scope["id"])
            if key not in self.ids:
                msg = f"client scope {name!r} is referred to, but exists neither in Keycloak nor in the file"  # noqa: E501
                raise LookupError(msg)
        return self.ids[key]

    async def role(self, ref: Ref) -> dict[str, Any]:
        """A role's representation (id and name), as grants and composites need it."""
        if ref not in self._roles:
            if ref[0] == "realm":
                path = f"{self.base}/roles/{q(ref[1])}"
            else:
                path = f"{self.base}/clients/{await self.client(ref[1])}/roles/{q(ref[2])}"
            found = await self.admin.find(path)
            if found is None:
                msg = f"role {'/'.join(ref[1:])!r} is referred to, but exists neither in Keycloak nor in the file"  # noqa: E501
                raise LookupError(msg)
            self._roles[ref] = {"id": found["id"], "name": found["name"]}
        return self._roles[ref]

    async def flow(self, alias: str) -> str:
        """A flow's id by alias (ids pass through: exports bind flows by id)."""
        if self._flows is None:
            flows = await self.admin.get_json(f"{self.base}/authentication/flows")
            self._flows = {f["alias"]: f["id"] for f in flows}
        return self._flows.get(alias, alias)
