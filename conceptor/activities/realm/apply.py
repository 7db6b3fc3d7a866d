"""Write a realm diff to Keycloak: pending changes in dependency order, errors naming the path."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import activity

from conceptor.activities.keycloak_admin import KeycloakAdmin
from conceptor.activities.realm.items import MASK, ORDER, Item, Ref
from conceptor.activities.realm.lookup import Lookup
from conceptor.activities.realm.snapshot import q
from conceptor.contracts import Change, Diff

Items = dict[tuple[str, str], Item]


def merged(have: dict[str, Any], want: dict[str, Any]) -> dict[str, Any]:
    """`want` over `have`, attributes merged key by key (a PUT replaces the whole map)."""
    out = {**have, **want}
    if isinstance(have.get("attributes"), dict) and isinstance(want.get("attributes"), dict):
        out["attributes"] = {**have["attributes"], **want["attributes"]}
    return out


def without_masked(value: dict[str, Any]) -> dict[str, Any]:
    """Without the values Keycloak hides: writing `**********` back would set it."""
    return {
        k: without_masked(v) if isinstance(v, dict) else v for k, v in value.items() if v != MASK
    }


class Applier:
    """Applies one diff; `desired` and `live` are the items it was computed from."""

    def __init__(self, admin: KeycloakAdmin, realm: str, desired: Items, live: Items) -> None:
        self.admin = admin
        self.desired = desired
        self.live = live
        self.ids = Lookup(admin, realm, live)
        self.desired_realm = realm
        self.base = self.ids.base

    async def run(self, diff: Diff) -> None:
        pending = [c for c in diff.pending if c.action != "delete"]
        pending.sort(key=lambda c: (ORDER[c.kind], c.name.count("/"), c.name))
        writers: dict[str, Callable[[Change, Item], Awaitable[None]]] = {
            "realm": self._realm,
            "client-scope": self._scope,
            "client-scope-mapper": self._mapper,
            "default-client-scopes": self._default_scopes,
            "client": self._client,
            "client-mapper": self._mapper,
            "role": self._role,
            "client-role": self._role,
            "group": self._group,
            "user": self._user,
            "service-account": self._service_account,
            "scope-mapping": self._service_account,
            "identity-provider": self._provider,
            "identity-provider-mapper": self._provider_mapper,
            "required-action": self._required_action,
            "component": self._component,
        }
        for change in pending:
            await writers[change.kind](change, self.desired[(change.kind, change.name)])
            activity.heartbeat()
        # Composites and grants once every role, group and user exists: order in the file
        # does not matter.
        for change in pending:
            item = self.desired[(change.kind, change.name)]
            if (
                any(f.split("[")[0] in item.members for f in change.fields)
                or change.action == "create"
            ):
                await self._members(item)
                activity.heartbeat()
        deletions = [c for c in diff.pending if c.action == "delete"]
        deletions.sort(key=lambda c: (-ORDER[c.kind], -c.name.count("/")))
        for change in deletions:
            await self._delete(change)

    def _where(self, item: Item) -> str:
        return f"{item.source} ({item.kind} {item.name})"

    def _have(self, item: Item) -> dict[str, Any]:
        found = self.live.get(item.key)
        return without_masked(found.body) if found else {}

    async def _put_or_post(
        self, change: Change, item: Item, collection: str, body: dict[str, Any]
    ) -> None:
        """Create in `collection`, or update the object in it whose id the live state gives."""
        where, body = self._where(item), without_masked(body)
        if change.action == "create":
            new_id = await self.admin.create(collection, body, where=where)
            self.ids.remember(item.kind, item.name, new_id)
        elif change.fields:
            oid = self.ids.ids[item.key]
            await self.admin.call(
                "PUT",
                f"{collection}/{oid}",
                json={**merged(self._have(item), body), "id": oid},
                where=where,
            )

    async def _realm(self, change: Change, item: Item) -> None:
        if change.action == "update":
            body = merged(self._have(item), item.body)
            await self.admin.call("PUT", self.base, json=body, where=self._where(item))

    async def _scope(self, change: Change, item: Item) -> None:
        await self._put_or_post(change, item, f"{self.base}/client-scopes", item.body)

    async def _mapper(self, change: Change, item: Item) -> None:
        assert item.parent is not None
        if item.kind == "client-mapper":
            owner = f"{self.base}/clients/{await self.ids.client(item.parent)}"
        else:
            owner = f"{self.base}/client-scopes/{await self.ids.scope(item.parent)}"
        await self._put_or_post(change, item, f"{owner}/protocol-mappers/models", item.body)

    async def _provider(self, change: Change, item: Item) -> None:
        where, collection = self._where(item), f"{self.base}/identity-provider/instances"
        if change.action == "create":
            await self.admin.create(collection, without_masked(item.body), where=where)
        else:
            body = merged(self._have(item), without_masked(item.body))
            await self.admin.call("PUT", f"{collection}/{q(item.name)}", json=body, where=where)

    async def _provider_mapper(self, change: Change, item: Item) -> None:
        collection = f"{self.base}/identity-provider/instances/{q(str(item.parent))}/mappers"
        await self._put_or_post(change, item, collection, item.body)

    async def _required_action(self, change: Change, item: Item) -> None:
        where, base = self._where(item), f"{self.base}/authentication"
        if change.action == "create":
            provider = item.body.get("providerId", item.name)
            body = {"providerId": provider, "name": item.body.get("name", provider)}
            await self.admin.call(
                "POST", f"{base}/register-required-action", json=body, where=where
            )
        have = self._have(item) if change.action == "update" else {}
        body = merged(have, without_masked(item.body))
        await self.admin.call(
            "PUT", f"{base}/required-actions/{q(item.name)}", json=body, where=where
        )

    async def _component(self, change: Change, item: Item) -> None:
        """A component and its sub-components (LDAP mappers); key material only on creation."""
        where, collection = self._where(item), f"{self.base}/components"
        if change.action == "create":
            realm_id = self.ids.ids.get(("realm", self.desired_realm))
            await self._create_component(item.extra["raw"], str(item.parent), realm_id, where)
            return
        cid = self.ids.ids[item.key]
        live = await self.admin.get_json(f"{collection}/{cid}")
        want = {k: v for k, v in item.body.items() if k != "subComponents"}
        body = merged(live, without_masked(want))
        body["config"] = {**live.get("config", {}), **without_masked(want.get("config", {}))}
        await self.admin.call("PUT", f"{collection}/{cid}", json=body, where=where)
        subs = await self.admin.get_json(f"{collection}?parent={cid}")
        have = {(c.get("providerType"), c.get("name")): c for c in subs}
        raw_subs = item.extra["raw"].get("subComponents") or {}
        for sub_type, wanted in (item.body.get("subComponents") or {}).items():
            for i, sub in enumerate(wanted):
                found = have.get((sub_type, sub.get("name")))
                if found is None:
                    await self._create_component(raw_subs[sub_type][i], sub_type, cid, where)
                    continue
                sub_body = merged(found, without_masked(sub))
                sub_body["config"] = {**found.get("config", {}), **sub.get("config", {})}
                await self.admin.call(
                    "PUT", f"{collection}/{found['id']}", json=sub_body, where=where
                )

    async def _create_component(
        self, raw: dict[str, Any], provider_type: str, parent: str | None, where: str
    ) -> None:
        body = {k: v for k, v in raw.items() if k not in ("id", "subComponents", "parentId")}
        body["providerType"] = provider_type
        if parent:
            body["parentId"] = parent
        new_id = await self.admin.create(f"{self.base}/components", body, where=where)
        for sub_type, subs in (raw.get("subComponents") or {}).items():
            for sub in subs:
                await self._create_component(sub, sub_type, new_id, where)

    async def _default_scopes(self, change: Change, item: Item) -> None:
        """Membership only: handled with the other members."""

    async def _client(self, change: Change, item: Item) -> None:
        body = dict(item.body)
        overrides = body.get("authenticationFlowBindingOverrides")
        if overrides:
            body["authenticationFlowBindingOverrides"] = {
                k: await self.ids.flow(v) for k, v in overrides.items()
            }
        await self._put_or_post(change, item, f"{self.base}/clients", body)

    async def _role(self, change: Change, item: Item) -> None:
        where = self._where(item)
        if item.kind == "role":
            collection = f"{self.base}/roles"
        else:
            assert item.parent is not None
            collection = f"{self.base}/clients/{await self.ids.client(item.parent)}/roles"
        if change.action == "create":
            await self.admin.create(collection, item.body, where=where)
        elif [f for f in change.fields if f.split("[")[0] not in item.members]:
            role_name = item.body.get("name", item.name.rsplit("/", 1)[-1])
            body = merged(self._have(item), item.body)
            await self.admin.call("PUT", f"{collection}/{q(role_name)}", json=body, where=where)

    async def _group(self, change: Change, item: Item) -> None:
        where = self._where(item)
        body = {"name": item.body["name"], "attributes": item.body.get("attributes", {})}
        if change.action == "create":
            parent = self.ids.ids.get(("group", item.parent)) if item.parent else None
            collection = (
                f"{self.base}/groups/{parent}/children" if parent else f"{self.base}/groups"
            )
            new_id = await self.admin.create(collection, body, where=where)
            self.ids.remember("group", item.name, new_id)
        elif [f for f in change.fields if f.split("[")[0] not in item.members]:
            gid = self.ids.ids[item.key]
            await self.admin.call(
                "PUT", f"{self.base}/groups/{gid}", json=merged(self._have(item), body), where=where
            )

    async def _user(self, change: Change, item: Item) -> None:
        where = self._where(item)
        if change.action == "create":
            # Credentials are set when the user is created only: a developer may have changed
            # the password since.
            body = {**item.body, "credentials": item.extra.get("credentials", [])}
            new_id = await self.admin.create(f"{self.base}/users", body, where=where)
            self.ids.remember("user", item.name, new_id)
        elif [f for f in change.fields if f.split("[")[0] not in item.members]:
            uid = self.ids.ids[item.key]
            await self.admin.call(
                "PUT",
                f"{self.base}/users/{uid}",
                json=merged(self._have(item), item.body),
                where=where,
            )

    async def _service_account(self, change: Change, item: Item) -> None:
        """Roles only (service accounts, scope mappings): handled with the other members."""

    async def _members(self, item: Item) -> None:
        """Add what the live element lacks of its composites, grants, groups and scopes."""
        have = self.live.get(item.key)
        where = self._where(item)
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
                uid = self.ids.ids[item.key]
                for ref in lacking:
                    gid = self.ids.ids[("group", ref[1])]
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
            owner = f"{self.base}/groups/{self.ids.ids[item.key]}/role-mappings"
        elif item.kind == "user":
            owner = f"{self.base}/users/{self.ids.ids[item.key]}/role-mappings"
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

    async def _delete(self, change: Change) -> None:
        item = self.live[(change.kind, change.name)]
        where = f"{change.kind} {change.name}"
        paths = {
            "client": f"{self.base}/clients/{item.live_id}",
            "client-scope": f"{self.base}/client-scopes/{item.live_id}",
            "role": f"{self.base}/roles-by-id/{item.live_id}",
            "client-role": f"{self.base}/roles-by-id/{item.live_id}",
            "group": f"{self.base}/groups/{item.live_id}",
            "user": f"{self.base}/users/{item.live_id}",
        }
        if change.kind == "identity-provider":
            paths[change.kind] = f"{self.base}/identity-provider/instances/{q(change.name)}"
        if change.kind == "identity-provider-mapper" and item.parent is not None:
            provider = f"{self.base}/identity-provider/instances/{q(item.parent)}"
            paths[change.kind] = f"{provider}/mappers/{item.live_id}"
        if change.kind == "client-mapper" and item.parent is not None:
            owner = await self.ids.client(item.parent)
            paths["client-mapper"] = (
                f"{self.base}/clients/{owner}/protocol-mappers/models/{item.live_id}"
            )
        if change.kind in paths:
            await self.admin.call("DELETE", paths[change.kind], ok=(204, 404), where=where)
