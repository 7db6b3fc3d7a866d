"""Write a realm diff to Keycloak: pending changes in dependency order, errors naming the path."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from conceptor.activities.keycloak_admin import REALM_REJECTED, KeycloakAdmin
from conceptor.activities.realm.apply_support import merged, without_masked
from conceptor.activities.realm.components import ComponentWriter
from conceptor.activities.realm.flows import FlowWriter, depth
from conceptor.activities.realm.items import ORDER, Item
from conceptor.activities.realm.lookup import Lookup
from conceptor.activities.realm.members import MemberWriter
from conceptor.activities.realm.normalise import items_of
from conceptor.activities.realm.snapshot import q, read_live
from conceptor.contracts import Change, Diff

Items = dict[tuple[str, str], Item]


class Applier:
    """Applies one diff; `desired` and `live` are the items it was computed from."""

    def __init__(self, admin: KeycloakAdmin, realm: str, desired: Items, live: Items) -> None:
        self.admin = admin
        self.desired = desired
        self.live = live
        self.ids = Lookup(admin, realm, live)
        self.desired_realm = realm
        self.base = self.ids.base
        self.flows = FlowWriter(admin, self.base, desired, live)
        self.components = ComponentWriter(admin, self.base, self.ids, realm)
        self.members = MemberWriter(admin, self.base, self.ids, live)

    async def run(self, diff: Diff) -> None:
        pending = [c for c in diff.pending if c.action != "delete"]
        pending.sort(key=lambda c: (ORDER[c.kind], self._depth(c), c.name.count("/"), c.name))
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
            "client-authorization": self._authorization,
            "authentication-flow": self._flow,
            "authenticator-config": self._flow_config,
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

    def _depth(self, change: Change) -> int:
        if change.kind != "authentication-flow":
            return 0
        return depth(self.desired, change.name)

    async def _flow(self, change: Change, item: Item) -> None:
        await self.flows.flow(change, item, self._where(item))

    async def _flow_config(self, change: Change, item: Item) -> None:
        await self.flows.config(change, item, self._where(item))

    async def _create(self, item: Item, collection: str, body: dict[str, Any]) -> str | None:
        """POST; a refusal is accepted when the element exists after all: a run under another
        id created it meanwhile (Keycloak answers 409 for most kinds, 400 for some)."""
        try:
            return await self.admin.create(collection, body, where=self._where(item))
        except ApplicationError as exc:
            if exc.type != REALM_REJECTED:
                raise
            live_rep = await read_live(self.admin, self.desired_realm, secrets_of=set())
            found = items_of(live_rep).get(item.key) if live_rep else None
            if found is None:
                raise
            return found.live_id

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
            new_id = await self._create(item, collection, body)
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
            await self._create(item, collection, without_masked(item.body))
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
        await self.components.write(change, item, self._where(item))

    async def _authorization(self, change: Change, item: Item) -> None:
        """Keycloak's own import of a client's authorization settings: resources, scopes and
        policies by name, created or overwritten."""
        cid = await self.ids.client(str(item.parent))
        path = f"{self.base}/clients/{cid}/authz/resource-server/import"
        await self.admin.call("POST", path, json=item.extra["raw"], where=self._where(item))

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
            await self._create(item, collection, item.body)
        elif [f for f in change.fields if f.split("[")[0] not in item.members]:
            role_name = item.body.get("name", item.name.rsplit("/", 1)[-1])
            body = merged(self._have(item), item.body)
            await self.admin.call("PUT", f"{collection}/{q(role_name)}", json=body, where=where)

    async def _group(self, change: Change, item: Item) -> None:
        where = self._where(item)
        body = {"name": item.body["name"], "attributes": item.body.get("attributes", {})}
        if change.action == "create":
            parent = await self.ids.id_of("group", item.parent) if item.parent else None
            collection = (
                f"{self.base}/groups/{parent}/children" if parent else f"{self.base}/groups"
            )
            new_id = await self._create(item, collection, body)
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
            new_id = await self._create(item, f"{self.base}/users", body)
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
        await self.members.add(item, self._where(item))

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
