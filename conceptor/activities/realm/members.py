"""Memberships: composites, role grants, group members, client scopes; missing ones added."""

from __future__ import annotations

from conceptor.activities.keycloak_admin import KeycloakAdmin
from conceptor.activities.realm.items import Item, Ref
from conceptor.activities.realm.lookup import Lookup

Items = dict[tuple[str, str], Item]


class MemberWriter:
    """Adds what a live element lacks of the file's sets (extra live members are kept)."""

    def __init__(self, admin: KeycloakAdmin, base: str, ids: Lookup, live: Items) -> None:
        self.admin = admin
        self.base = base
        self.ids = ids
        self.live = live

    async def add(self, item: Item, where: str) -> None:
        """Add what the live element lacks of its composites, grants, groups and scopes."""
        have = self.live.get(item.key)
        for name, refs in sorted(item.members.items()):
            lacking = sorted(refs - (have.members.get(name, frozenset()) if have else frozenset()))
            if not lacking:
                continue
            if name == "composites":
                own: Ref = ("realm", item.body["name"])
                if item.kind == "client-role":
                    own = ("client", str(item.parent), item.body["name"])
                role = await self.ids.role(own)
                reps = [await self.ids.role(r) for r in lacking]
                await self.admin.call(
                    "POST",
                    f"{self.base}/roles-by-id/{role['id']}/composites",
                    json=reps,
                    where=where,
                )
            elif name == "roles":
                await self._grant(item, lacking, where)
            elif name == "groups":
                uid = await self.ids.id_of("user", item.name)
                for ref in lacking:
                    gid = await self.ids.id_of("group", ref[1])
                    await self.admin.call(
                        "PUT", f"{self.base}/users/{uid}/groups/{gid}", where=where
                    )
            elif item.kind == "default-client-scopes":
                which = (
                    "default-default-client-scopes"
                    if item.name == "default"
                    else "default-optional-client-scopes"
                )
                for ref in lacking:
                    await self.admin.call(
                        "PUT", f"{self.base}/{which}/{await self.ids.scope(ref[1])}", where=where
                    )
            else:  # a client's default or optional client scopes
                cid = await self.ids.client(item.name)
                which = (
                    "default-client-scopes"
                    if name == "defaultClientScopes"
                    else "optional-client-scopes"
                )
                for ref in lacking:
                    await self.admin.call(
                        "PUT",
                        f"{self.base}/clients/{cid}/{which}/{await self.ids.scope(ref[1])}",
                        where=where,
                    )

    async def _grant(self, item: Item, refs: list[Ref], where: str) -> None:
        if item.kind == "group":
            owner = f"{self.base}/groups/{await self.ids.id_of('group', item.name)}/role-mappings"
        elif item.kind == "user":
            owner = f"{self.base}/users/{await self.ids.id_of('user', item.name)}/role-mappings"
        elif item.kind == "scope-mapping":
            what, _, name = item.name.partition(":")
            if what == "client":
                owner = f"{self.base}/clients/{await self.ids.client(name)}/scope-mappings"
            else:
                owner = f"{self.base}/client-scopes/{await self.ids.scope(name)}/scope-mappings"
        else:
            cid = await self.ids.client(item.name)
            user = await self.admin.get_json(f"{self.base}/clients/{cid}/service-account-user")
            owner = f"{self.base}/users/{user['id']}/role-mappings"
        realm_roles = [await self.ids.role(r) for r in refs if r[0] == "realm"]
        if realm_roles:
            await self.admin.call("POST", f"{owner}/realm", json=realm_roles, where=where)
        for client_id in sorted({r[1] for r in refs if r[0] == "client"}):
            reps = [await self.ids.role(r) for r in refs if r[0] == "client" and r[1] == client_id]
            cid = await self.ids.client(client_id)
            await self.admin.call("POST", f"{owner}/clients/{cid}", json=reps, where=where)
