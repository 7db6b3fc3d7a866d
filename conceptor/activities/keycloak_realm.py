"""Bring a Keycloak realm up to its file: create it, or reconcile settings, roles, clients,
groups and users one by one (create-or-accept-existing, update only what differs)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from temporalio import activity
from temporalio.exceptions import ApplicationError

from conceptor.activities.keycloak_admin import REALM_REJECTED, KeycloakAdmin, KeycloakError

# Keys of a realm representation that are collections reconciled separately (or not at all);
# everything else is a realm-level setting, updated with the realm PUT.
_COLLECTIONS = {
    "clients", "roles", "groups", "users", "clientScopes", "components", "identityProviders",
    "identityProviderMappers", "authenticationFlows", "authenticatorConfig", "requiredActions",
    "scopeMappings", "clientScopeMappings", "defaultRole", "federatedUsers",
}  # fmt: skip
_VISIBLE_POLLS = 120
_VISIBLE_INTERVAL = 0.25
_USER_LINKS = {"credentials", "realmRoles", "groups", "clientRoles"}


def matches(want: Any, have: Any) -> bool:
    """True if everything `want` says is also so in `have` (extra server fields are fine)."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(
            k in have and matches(v, have[k]) for k, v in want.items()
        )
    if isinstance(want, list):
        if not isinstance(have, list):
            return False
        if all(not isinstance(w, dict | list) for w in want):
            # Keycloak stores URIs, origins and the like as sets: order is not significant.
            return sorted(map(str, set(want))) == sorted(map(str, set(have)))
        return len(want) == len(have) and all(any(matches(w, h) for h in have) for w in want)
    if type(want) is not type(have):
        return str(want).lower() == str(have).lower()  # "true" vs true, "25" vs 25
    return bool(want == have)


class Changes:
    """Names of what was created, updated and left unchanged, for the step result."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self.updated: list[str] = []
        self.unchanged: list[str] = []

    def add(self, name: str, *, created: bool = False, updated: bool = False) -> None:
        (self.created if created else self.updated if updated else self.unchanged).append(name)
        activity.heartbeat()


class RealmReconciler:
    """One import of one realm representation."""

    def __init__(self, admin: KeycloakAdmin, realm: dict[str, Any]) -> None:
        self.admin = admin
        self.realm = realm
        self.name = str(realm["realm"])
        self.base = f"/realms/{quote(self.name)}"
        self.changes = Changes()

    async def run(self) -> Changes:
        current = await self.admin.find(self.base)
        if current is None:
            if await self.admin.create("/realms", self.realm):
                self._all_created()
                return self.changes
            # 409: a concurrent run is creating it; wait until its transaction is visible.
            current = await self._visible(lambda: self.admin.find(self.base), f"realm {self.name}")
        # Everything runs concurrently except what refers to something else: roles first
        # (groups and users are granted them), and a user joins a group only once every group
        # is in place. A re-run that changes nothing is then four admin calls deep.
        roles = self.realm.get("roles", {}).get("realm", [])
        await asyncio.gather(self._settings(current), *(self._role(r) for r in roles))
        groups_ready = asyncio.Event()

        async def groups() -> None:
            try:
                await asyncio.gather(*(self._group(g) for g in self.realm.get("groups", [])))
            finally:
                groups_ready.set()

        await asyncio.gather(
            *(self._client(c) for c in self.realm.get("clients", [])),
            groups(),
            *(self._user(u, groups_ready) for u in self.realm.get("users", [])),
        )
        return self.changes

    @staticmethod
    async def _visible(
        lookup: Callable[[], Awaitable[dict[str, Any] | None]], label: str
    ) -> dict[str, Any]:
        """A resource just created (by us or, after a 409, by a concurrent run that may not
        have committed yet: creating a realm takes Keycloak seconds)."""
        for _ in range(_VISIBLE_POLLS):
            found = await lookup()
            if found is not None:
                return found
            activity.heartbeat()
            await asyncio.sleep(_VISIBLE_INTERVAL)
        msg = f"{label} still not visible {_VISIBLE_POLLS * _VISIBLE_INTERVAL:g}s after a 409"
        raise KeycloakError(msg)  # retryable: the activity starts over

    def _all_created(self) -> None:
        self.changes.add("realm-settings", created=True)
        for role in self.realm.get("roles", {}).get("realm", []):
            self.changes.add(f"role:{role['name']}", created=True)
        for kind, key in (("client", "clientId"), ("group", "name"), ("user", "username")):
            for item in self.realm.get(f"{kind}s", []):
                self.changes.add(f"{kind}:{item[key]}", created=True)

    async def _settings(self, have: dict[str, Any]) -> None:
        want = {k: v for k, v in self.realm.items() if k not in _COLLECTIONS}
        if matches(want, have):
            self.changes.add("realm-settings")
            return
        await self.admin.call("PUT", self.base, json=want)
        self.changes.add("realm-settings", updated=True)

    async def _role(self, want: dict[str, Any]) -> None:
        path = f"{self.base}/roles/{quote(want['name'])}"
        have = await self.admin.find(path)
        label = f"role:{want['name']}"
        if have is None:
            created = await self.admin.create(f"{self.base}/roles", want)
            self.changes.add(label, created=created)
            return
        if matches(want, have):
            self.changes.add(label)
            return
        await self.admin.call("PUT", path, json={**have, **want})
        self.changes.add(label, updated=True)

    async def _client(self, want: dict[str, Any]) -> None:
        label = f"client:{want['clientId']}"
        have = await self._find_client(want["clientId"])
        if have is None:
            if await self.admin.create(f"{self.base}/clients", want):
                self.changes.add(label, created=True)
                return
            have = await self._visible(lambda: self._find_client(want["clientId"]), label)
        settings = {k: v for k, v in want.items() if k != "protocolMappers"}
        path = f"{self.base}/clients/{have['id']}"
        updated = False
        if not matches(settings, have):
            await self.admin.call("PUT", path, json={**have, **settings})
            updated = True
        for mapper in want.get("protocolMappers", []):
            updated |= await self._mapper(path, mapper)
        self.changes.add(label, updated=updated)

    async def _find_client(self, client_id: str) -> dict[str, Any] | None:
        found = await self.admin.get_json(f"{self.base}/clients?clientId={quote(client_id)}")
        return next((c for c in found if c.get("clientId") == client_id), None)

    async def _mapper(self, client_path: str, want: dict[str, Any]) -> bool:
        models = f"{client_path}/protocol-mappers/models"
        have = next(
            (m for m in await self.admin.get_json(models) if m.get("name") == want["name"]), None
        )
        if have is None:
            return await self.admin.create(models, want)
        if matches(want, have):
            return False
        await self.admin.call("PUT", f"{models}/{have['id']}", json={**have, **want})
        return True

    async def _group(self, want: dict[str, Any]) -> None:
        label = f"group:{want['name']}"
        have = await self._find_group(want["name"])
        created = False
        if have is None:
            body = {k: v for k, v in want.items() if k not in ("realmRoles", "subGroups")}
            created = await self.admin.create(f"{self.base}/groups", body)
            have = await self._visible(lambda: self._find_group(want["name"]), label)
        path = f"{self.base}/groups/{have['id']}"
        updated = False
        attributes = want.get("attributes")
        if attributes is not None and not matches(attributes, have.get("attributes", {})):
            await self.admin.call("PUT", path, json={**have, "attributes": attributes})
            updated = True
        updated |= await self._grant_roles(path, want.get("realmRoles", []))
        self.changes.add(label, created=created, updated=updated)

    async def _find_group(self, name: str) -> dict[str, Any] | None:
        found = await self.admin.get_json(
            f"{self.base}/groups?search={quote(name)}&exact=true&briefRepresentation=false"
        )
        return next((g for g in found if g.get("path") == f"/{name}"), None)

    async def _grant_roles(self, owner_path: str, roles: list[str]) -> bool:
        """Add missing realm roles to a user or group (never removes any); True if any added."""
        mappings = f"{owner_path}/role-mappings/realm"
        granted = {r["name"] for r in await self.admin.get_json(mappings)}
        missing = [r for r in roles if r not in granted]
        if not missing:
            return False
        reps = [await self.admin.get_json(f"{self.base}/roles/{quote(r)}") for r in missing]
        await self.admin.call("POST", mappings, json=reps)
        return True

    async def _user(self, want: dict[str, Any], groups_ready: asyncio.Event) -> None:
        label = f"user:{want['username']}"
        have = await self._find_user(want["username"])
        created = False
        if have is None:
            # Groups are joined below, once they exist; roles are granted explicitly too.
            body = {
                k: v for k, v in want.items() if k not in ("realmRoles", "clientRoles", "groups")
            }
            created = await self.admin.create(f"{self.base}/users", body)
            have = await self._visible(lambda: self._find_user(want["username"]), label)
        path = f"{self.base}/users/{have['id']}"
        profile = {k: v for k, v in want.items() if k not in _USER_LINKS}
        updated = False
        # Passwords are set on creation only: a developer may have changed theirs since.
        if not created and not matches(profile, have):
            await self.admin.call("PUT", path, json=profile)
            updated = True
        granted, joined = await asyncio.gather(
            self._grant_roles(path, want.get("realmRoles", [])),
            self._join_groups(path, want.get("groups", []), groups_ready),
        )
        updated = updated or granted or joined
        self.changes.add(label, created=created, updated=updated and not created)

    async def _find_user(self, username: str) -> dict[str, Any] | None:
        found = await self.admin.get_json(
            f"{self.base}/users?username={quote(username)}&exact=true"
        )
        return next((u for u in found if u.get("username") == username.lower()), None)

    async def _join_groups(
        self, user_path: str, groups: list[str], groups_ready: asyncio.Event
    ) -> bool:
        member_of = {g["path"] for g in await self.admin.get_json(f"{user_path}/groups")}
        missing = [g if g.startswith("/") else f"/{g}" for g in groups]
        missing = [g for g in missing if g not in member_of]
        if missing:
            await groups_ready.wait()
        for group_path in missing:
            group = await self._find_group(group_path.lstrip("/"))
            if group is None:
                msg = f"realm {self.name}: a user joins group {group_path}, which the file lacks"
                raise ApplicationError(msg, type=REALM_REJECTED, non_retryable=True)
            await self.admin.call("PUT", f"{user_path}/groups/{group['id']}")
        return bool(missing)
