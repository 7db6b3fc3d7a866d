"""Authentication flows: executions added, requirements and priorities set, configs attached."""

from __future__ import annotations

from typing import Any

from conceptor.activities.keycloak_admin import KeycloakAdmin
from conceptor.activities.realm.items import Item
from conceptor.activities.realm.snapshot import q
from conceptor.contracts import Change

Items = dict[tuple[str, str], Item]


def depth(desired: Items, alias: str) -> int:
    """How deep a flow is nested (top-level 0): parents are written before their subflows."""
    parents = {
        e.get("flowAlias"): item.name
        for item in desired.values()
        if item.kind == "authentication-flow"
        for e in item.body.get("authenticationExecutions", [])
        if e.get("flowAlias")
    }
    level, seen = 0, {alias}
    while alias in parents and parents[alias] not in seen:
        alias = parents[alias]
        seen.add(alias)
        level += 1
    return level


def _same(want: dict[str, Any], entry: dict[str, Any]) -> bool:
    if want.get("flowAlias"):
        return (
            bool(entry.get("authenticationFlow")) and entry.get("displayName") == want["flowAlias"]
        )
    return not entry.get("authenticationFlow") and entry.get("providerId") == want.get(
        "authenticator"
    )


class FlowWriter:
    """Writes flows and authenticator configs of one realm."""

    def __init__(self, admin: KeycloakAdmin, base: str, desired: Items, live: Items) -> None:
        self.admin = admin
        self.base = f"{base}/authentication"
        self.desired = desired
        self.live = live

    async def flow(self, change: Change, item: Item, where: str) -> None:
        if change.action == "create" and item.body.get("topLevel", True):
            body = {k: item.body.get(k) for k in ("alias", "description", "providerId")}
            body.update(topLevel=True, builtIn=False)
            await self.admin.call("POST", f"{self.base}/flows", json=body, where=where)
        # A subflow was created by its parent's execution (parents are written first).
        await self._executions(item, where)

    async def _level0(self, alias: str) -> list[dict[str, Any]]:
        entries = await self.admin.get_json(f"{self.base}/flows/{q(alias)}/executions")
        return [e for e in entries if e.get("level") == 0]

    async def _executions(self, item: Item, where: str) -> None:
        alias = item.name
        wanted = sorted(
            item.body.get("authenticationExecutions", []), key=lambda e: e.get("priority", 0)
        )
        live = await self._level0(alias)
        for i, want in enumerate(wanted):
            entry = next((e for e in live if _same(want, e)), None)
            if entry is None:
                await self._add(alias, want, where)
                live_now = await self._level0(alias)
                entry = next(e for e in reversed(live_now) if _same(want, e))
            else:
                live.remove(entry)
            changes = {
                k: want[k]
                for k in ("requirement", "priority")
                if k in want and entry.get(k) != want[k]
            }
            if changes:
                body = {**entry, **changes}
                await self.admin.call(
                    "PUT",
                    f"{self.base}/flows/{q(alias)}/executions",
                    json=body,
                    where=f"{where}.authenticationExecutions[{i}]",
                )
            config = want.get("authenticatorConfig")
            if config and not entry.get("authenticationConfig"):
                body = {"alias": config, "config": self._config(config)}
                await self.admin.call(
                    "POST", f"{self.base}/executions/{entry['id']}/config", json=body, where=where
                )

    async def _add(self, alias: str, want: dict[str, Any], where: str) -> None:
        path = f"{self.base}/flows/{q(alias)}/executions"
        if want.get("flowAlias"):
            sub = self.desired.get(("authentication-flow", want["flowAlias"]))
            kind = sub.body.get("providerId", "basic-flow") if sub else "basic-flow"
            body = {"alias": want["flowAlias"], "type": kind, "provider": "registration-page-form"}
            body["description"] = (sub.body.get("description") if sub else "") or ""
            await self.admin.call("POST", f"{path}/flow", json=body, where=where)
        else:
            body = {"provider": want.get("authenticator")}
            await self.admin.call("POST", f"{path}/execution", json=body, where=where)

    def _config(self, alias: str) -> dict[str, Any]:
        item = self.desired.get(("authenticator-config", alias))
        config: dict[str, Any] = (item.body.get("config") if item else None) or {}
        return config

    async def config(self, change: Change, item: Item, where: str) -> None:
        """An existing config's values; a missing one is attached with its execution."""
        if change.action != "update":
            return
        have = self.live[item.key]
        body = {
            "id": have.live_id,
            "alias": item.name,
            "config": {**have.body.get("config", {}), **item.body.get("config", {})},
        }
        await self.admin.call("PUT", f"{self.base}/config/{have.live_id}", json=body, where=where)
