"""The live realm read through Conceptor's Keycloak extension (a page of users with their grants
and groups per call) and through the admin API alone give the same diff, on a real Keycloak."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from conceptor.activities.keycloak_admin import KeycloakAdmin
from conceptor.activities.realm.reconciler import RealmReconciler
from conceptor.activities.realm_file import load_realm
from conceptor.contracts import Diff
from conceptor.platform.devservices.stack import LocalStack
from conceptor.platform.keycloak_tokens import AdminTokens
from conceptor.platform.settings import Settings
from tests.fixtures.realms.scale import scale_realm
from tests.integration.provision_realm_support import Admin, edit_file, import_realm, realm_env

pytestmark = pytest.mark.integration


async def plan_both_ways(settings: Settings, rep: dict[str, Any]) -> tuple[Diff, Diff]:
    """The plan of `rep` read in bulk and read through the admin API alone; each path's reads
    checked on the wire, so neither silently stands in for the other."""
    diffs: list[Diff] = []
    for bulk in (True, False):
        paths: list[str] = []

        async def seen(request: httpx.Request, paths: list[str] = paths) -> None:
            paths.append(request.url.path)

        async with httpx.AsyncClient(timeout=60, event_hooks={"request": [seen]}) as http:
            chosen = settings.model_copy(update={"realm_bulk_read": bulk})
            admin = KeycloakAdmin(chosen, http, AdminTokens(chosen))
            diffs.append(await RealmReconciler(admin, rep, managed=set()).run(plan=True))
        in_bulk = [p for p in paths if p.endswith("/users-bulk")]
        members = [p for p in paths if p.endswith(("/users", "/members"))]
        assert admin.writes == []
        if bulk:
            assert in_bulk and members == [], paths
        else:
            assert in_bulk == [] and members, paths
    return diffs[0], diffs[1]


def changes(diff: Diff) -> list[tuple[str, str, str, list[str]]]:
    return [(c.kind, c.name, c.action, c.fields) for c in diff.changes]


async def test_small_realm_drifted_gives_one_diff_both_ways(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    """A few users, one of them read in full (the file gives it required actions): grants,
    groups and fields drifted by hand are found alike by both reads."""
    async with realm_env(local_stack.settings, tmp_path) as (env, admin):
        assert (await import_realm(env)).result.outcome == "created"
        alice = await user_id(admin, "alice")
        bob = await user_id(admin, "bob")
        role = await admin.json("/roles/platform-admin")
        await admin.ok("DELETE", f"/users/{alice}/role-mappings/realm", [role])
        group = (await admin.json("/groups?search=developers"))[0]
        await admin.ok("DELETE", f"/users/{bob}/groups/{group['id']}")
        bob_rep = await admin.json(f"/users/{bob}")
        await admin.ok("PUT", f"/users/{bob}", {**bob_rep, "lastName": "Changed"})
        edit_file(env, lambda d: d["users"][0].update(requiredActions=["UPDATE_PASSWORD"]))
        rep = load_realm(env.settings.realm_file, env.settings)  # placeholders filled in

        bulk, rest = await plan_both_ways(env.settings, rep)

        assert changes(bulk) == changes(rest)
        assert bulk.live_digest == rest.live_digest
        assert bulk.desired_digest == rest.desired_digest
        changed = {(kind, name): fields for kind, name, action, fields in changes(bulk)
                   if action != "unchanged"}  # fmt: skip
        assert changed == {
            ("user", "alice"): ["requiredActions", "roles[platform-admin]"],
            ("user", "bob"): ["lastName", "groups[/developers]"],
        }


async def test_realm_read_in_full_gives_one_diff_both_ways(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    """250 users that the file gives required actions (read in full, the whole listing): the
    import creates and verifies through the bulk read, a re-run writes nothing, and after
    drift both reads give the same diff."""
    async with realm_env(local_stack.settings, tmp_path) as (env, admin):
        rep = scale_realm(env.realm, 250)
        for user in rep["users"]:
            user["requiredActions"] = ["VERIFY_EMAIL"]
        env.settings.realm_file.write_text(json.dumps(rep))
        assert (await import_realm(env)).result.outcome == "created"
        again = await import_realm(env)
        assert (again.result.outcome, again.writes) == ("unchanged", [])
        first = await user_id(admin, "user-000000")
        await admin.ok("DELETE", f"/users/{first}")
        second = await user_id(admin, "user-000001")
        granted = await admin.json(f"/users/{second}/role-mappings/realm")
        await admin.ok("DELETE", f"/users/{second}/role-mappings/realm", granted)
        third = await user_id(admin, "user-000002")
        await admin.ok("PUT", f"/users/{third}", {"requiredActions": []})

        bulk, rest = await plan_both_ways(env.settings, rep)

        assert changes(bulk) == changes(rest)
        assert bulk.live_digest == rest.live_digest
        changed = {(kind, name): (action, fields) for kind, name, action, fields in changes(bulk)
                   if action != "unchanged"}  # fmt: skip
        assert changed == {
            ("user", "user-000000"): ("create", []),
            ("user", "user-000001"): (
                "update",
                [f"roles[{r}]" for r in rep["users"][1]["realmRoles"]],
            ),
            ("user", "user-000002"): ("update", ["requiredActions"]),
        }


async def user_id(admin: Admin, username: str) -> str:
    found = await admin.json(f"/users?username={username}&exact=true")
    assert len(found) == 1, found
    return str(found[0]["id"])
