"""`managed` mode: deletes only what provisioning created and the file no longer lists; the
default is additive; a saved plan is refused once the live state moved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from conceptor.contracts import PlanDigests
from conceptor.platform.devservices.stack import LocalStack
from tests.integration.provision_realm_support import edit_file, import_realm, realm_env

pytestmark = pytest.mark.integration
MANAGED = "clients,roles,groups,users"


def _temporary(realm: dict[str, Any]) -> None:
    realm["clients"].append({"clientId": "temp-client", "publicClient": True})
    realm["roles"]["realm"].append({"name": "temp-role"})
    realm["groups"].append({"name": "temp-group", "subGroups": [{"name": "temp-child"}]})
    realm["users"].append({"username": "temp-user", "enabled": True})


def _without_temporary(realm: dict[str, Any]) -> None:
    realm["clients"] = [c for c in realm["clients"] if c["clientId"] != "temp-client"]
    realm["roles"]["realm"] = [r for r in realm["roles"]["realm"] if r["name"] != "temp-role"]
    realm["groups"] = [g for g in realm["groups"] if g["name"] != "temp-group"]
    realm["users"] = [u for u in realm["users"] if u["username"] != "temp-user"]


async def test_managed_deletes_only_what_provisioning_created(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    """Objects the file dropped are kept by default, deleted in managed mode; objects made by
    hand are never deleted; ownership is recorded in the realm's attributes."""
    async with realm_env(local_stack.settings, tmp_path) as (env, admin):
        await import_realm(env)
        edit_file(env, _temporary)  # created on the existing realm: recorded as owned
        await import_realm(env)
        await admin.ok("POST", "/clients", {"clientId": "hand-made"})
        await admin.ok("POST", "/groups", {"name": "hand-group"})
        edit_file(env, _without_temporary)

        additive = await import_realm(env)
        assert (additive.result.outcome, additive.writes) == ("unchanged", [])
        assert await admin.json("/clients?clientId=temp-client") != []

        managed = await import_realm(env, realm_managed=MANAGED)

        assert managed.result.changed == [
            "-client:temp-client",
            "-role:temp-role",
            "-group:/temp-group",
            "-group:/temp-group/temp-child",
            "-user:temp-user",
        ]
        assert managed.result.counts["deleted"] == 5
        assert await admin.json("/clients?clientId=temp-client") == []
        assert (await admin.call("GET", "/roles/temp-role")).status_code == 404
        assert await admin.json("/users?username=temp-user&exact=true") == []
        assert len(await admin.json("/clients?clientId=hand-made")) == 1
        groups = {g["name"] for g in await admin.json("/groups")}
        assert "hand-group" in groups and "temp-group" not in groups
        attributes = (await admin.json(""))["attributes"]
        assert "temp-client" not in json.loads(attributes["conceptor.owned.client"])
        assert "conceptor-panel" in json.loads(attributes["conceptor.owned.client"])
        again = await import_realm(env, realm_managed=MANAGED)
        assert (again.result.outcome, again.writes) == ("unchanged", [])


async def test_unknown_managed_kind_is_refused(local_stack: LocalStack, tmp_path: Path) -> None:
    """A word CENTRAL_REALM_MANAGED does not know fails before anything is read or written."""
    async with realm_env(local_stack.settings, tmp_path) as (env, _):
        with pytest.raises(ApplicationError) as info:
            await import_realm(env, realm_managed="clients,flows")
    assert info.value.non_retryable
    assert info.value.message == (
        "CENTRAL_REALM_MANAGED names flows, which provisioning cannot delete; known: "
        "client-scopes, clients, groups, identity-providers, roles, users"
    )


async def test_saved_plan_is_applied_or_refused_when_stale(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    """Applying a plan's digests works while nothing moved; after drift it is refused unwritten."""
    async with realm_env(local_stack.settings, tmp_path) as (env, admin):
        await import_realm(env)
        await admin.ok("DELETE", "/roles/user")
        plan = await import_realm(env, plan=True)
        assert plan.result.diff is not None
        digests = PlanDigests(
            desired_digest=plan.result.diff.desired_digest,
            live_digest=plan.result.diff.live_digest,
        )
        await admin.ok("DELETE", "/roles/platform-admin")
        with pytest.raises(ApplicationError) as info:
            await import_realm(env, expected=digests)
        assert info.value.type == "StalePlan"
        assert (await admin.call("GET", "/roles/user")).status_code == 404

        plan = await import_realm(env, plan=True)
        assert plan.result.diff is not None
        digests = PlanDigests(
            desired_digest=plan.result.diff.desired_digest,
            live_digest=plan.result.diff.live_digest,
        )
        applied = await import_realm(env, expected=digests)
        assert applied.result.changed == plan.result.changed
