"""Components (key providers, user federation and its mappers, the user profile): writes."""

from __future__ import annotations

from typing import Any

from conceptor.activities.keycloak_admin import KeycloakAdmin
from conceptor.activities.realm.apply_support import merged, without_masked
from conceptor.activities.realm.items import Item
from conceptor.activities.realm.lookup import Lookup
from conceptor.contracts import Change


class ComponentWriter:
    """Creates components with their sub-components; updates config key by key."""

    def __init__(self, admin: KeycloakAdmin, base: str, ids: Lookup, realm: str) -> None:
        self.admin = admin
        self.base = base
        self.ids = ids
        self.realm = realm

    async def write(self, change: Change, item: Item, where: str) -> None:
        """A component and its sub-components (LDAP mappers); key material only on creation."""
        collection = f"{self.base}/components"
        if change.action == "create":
            realm_id = self.ids.ids.get(("realm", self.realm))
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
