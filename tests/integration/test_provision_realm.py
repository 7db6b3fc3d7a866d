"""The realm reconciler against a real Keycloak: create, unchanged re-run with zero writes, plan,
drift repair, file edits, shuffled lists, composites before their children."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from conceptor.platform.devservices.stack import LocalStack
from tests.integration.provision_realm_support import (
    edit_file,
    import_realm,
    realm_env,
    shuffled,
    sorted_lists,
)
from tests.integration.provision_support import diff_paths, password_token

pytestmark = pytest.mark.integration

TECHNOVA = [
    "+realm:{realm}",
    "+client:conceptor-api",
    "+client:conceptor-panel",
    "+client-mapper:conceptor-api/audience conceptor-api",
    "+client-mapper:conceptor-panel/audience conceptor-api",
    "+role:platform-admin",
    "+role:user",
    "+group:/developers",
    "+group:/platform-admins",
    "+user:alice",
    "+user:bob",
]


async def test_create_then_rerun_writes_nothing(local_stack: LocalStack, tmp_path: Path) -> None:
    """Created with one write; the re-run compares, writes nothing (nor do admin events show
    any) and says `unchanged`; the partial export is the same before and after."""
    async with realm_env(local_stack.settings, tmp_path) as (env, admin):
        first = await import_realm(env)
        assert first.result.outcome == "created"
        assert first.result.changed == [c.format(realm=env.realm) for c in TECHNOVA]
        assert first.writes == ["POST /realms"]
        await admin.ok("PUT", "/events/config", {"adminEventsEnabled": True})
        events_before = await admin.admin_events()
        export_before = await admin.partial_export()

        again = await import_realm(env)

        assert again.writes == []
        assert again.result.outcome == "unchanged"
        assert again.result.counts == {"created": 0, "updated": 0, "deleted": 0, "unchanged": 11}
        assert again.result.detail.endswith(": 0 admin writes")
        assert await admin.admin_events() == events_before
        export_after = await admin.partial_export()
        assert diff_paths(sorted_lists(export_before), sorted_lists(export_after)) == []
        assert again.result.diff is not None and first.result.diff is not None
        assert again.result.diff.desired_digest == first.result.diff.desired_digest
        claims = await password_token(env, "alice", "alice")
        assert {"platform-admin", "user"} <= set(claims["realm_access"]["roles"])


async def test_plan_writes_nothing_and_lists_pending(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    """A plan of an absent realm lists every creation and leaves the realm absent; a plan after
    drift lists exactly what the apply then writes."""
    async with realm_env(local_stack.settings, tmp_path) as (env, admin):
        plan = await import_realm(env, plan=True)
        assert plan.writes == []
        assert plan.result.planned is True
        assert plan.result.changed == [c.format(realm=env.realm) for c in TECHNOVA]
        assert (await admin.call("GET", "")).status_code == 404

        await import_realm(env)
        await admin.ok("DELETE", "/roles/user")
        plan = await import_realm(env, plan=True)
        assert plan.writes == []
        assert plan.result.changed == [
            "+role:user",
            "~group:/developers",
            "~group:/platform-admins",
            "~user:alice",
            "~user:bob",
        ]
        assert (await admin.call("GET", "/roles/user")).status_code == 404
        applied = await import_realm(env)
        assert applied.result.changed == plan.result.changed
        assert applied.result.planned is False


async def test_drift_is_restored_and_named(local_stack: LocalStack, tmp_path: Path) -> None:
    """One object of every kind deleted in Keycloak, a realm setting, a client and a user
    changed: the re-run restores each, names each with the fields, and the next run is
    unchanged."""
    async with realm_env(local_stack.settings, tmp_path) as (env, admin):
        await import_realm(env)
        api = await admin.client_id("conceptor-api")
        mappers = await admin.json(f"/clients/{api}/protocol-mappers/models")
        await admin.ok("DELETE", f"/clients/{api}/protocol-mappers/models/{mappers[0]['id']}")
        client = await admin.json(f"/clients/{api}")
        await admin.ok("PUT", f"/clients/{api}", {**client, "directAccessGrantsEnabled": False})
        await admin.ok("DELETE", f"/clients/{await admin.client_id('conceptor-panel')}")
        await admin.ok("DELETE", "/roles/platform-admin")
        await admin.ok("DELETE", f"/groups/{await admin.group_id('/developers')}")
        await admin.ok("DELETE", f"/users/{await admin.user_id('bob')}")
        await admin.ok("PUT", "", {"realm": env.realm, "accessTokenLifespan": 60})
        alice = await admin.user_id("alice")
        user = await admin.json(f"/users/{alice}")
        await admin.ok("PUT", f"/users/{alice}", {**user, "lastName": "Changed"})

        repaired = await import_realm(env)

        assert repaired.result.outcome == "updated"
        assert repaired.result.changed == [
            f"~realm:{env.realm}",
            "~client:conceptor-api",
            "+client:conceptor-panel",
            "+client-mapper:conceptor-api/audience conceptor-api",
            "+client-mapper:conceptor-panel/audience conceptor-api",
            "+role:platform-admin",
            "+group:/developers",
            "~group:/platform-admins",
            "~user:alice",
            "+user:bob",
        ]
        assert repaired.result.diff is not None
        fields = {c.label: c.fields for c in repaired.result.diff.changes if c.fields}
        assert fields == {
            f"realm:{env.realm}": ["accessTokenLifespan"],
            "client:conceptor-api": ["directAccessGrantsEnabled"],
            "group:/platform-admins": ["roles[platform-admin]"],
            "user:alice": ["lastName", "roles[platform-admin]"],
        }
        again = await import_realm(env)
        assert (again.result.outcome, again.writes) == ("unchanged", [])
        claims = await password_token(env, "bob", "bob")  # bob is back, with his password
        assert "user" in claims["realm_access"]["roles"]


def _additions(realm: dict[str, Any]) -> None:
    """A client role, a composite role listed before its children, a client scope with a
    mapper, nested subgroups, names with accents, `+`, spaces and `/`, a user in a subgroup,
    an identity provider with a mapper."""
    realm["roles"]["realm"].insert(
        0,
        {
            "name": "rôle spécial + QA",
            "description": "composite, listed before its children",
            "composite": True,
            "composites": {"realm": ["opérateur"], "client": {"conceptor-panel": ["lire tout"]}},
        },
    )
    realm["roles"]["realm"].append({"name": "opérateur", "attributes": {"level": ["2"]}})
    realm["roles"]["client"] = {
        "conceptor-panel": [{"name": "lire tout", "description": "reads everything"}]
    }
    realm["clientScopes"] = [
        {
            "name": "conceptor-audit",
            "protocol": "openid-connect",
            "attributes": {"include.in.token.scope": "true"},
            "protocolMappers": [
                {
                    "name": "team claim",
                    "protocol": "openid-connect",
                    "protocolMapper": "oidc-usermodel-attribute-mapper",
                    "config": {"user.attribute": "team", "claim.name": "team"},
                }
            ],
        }
    ]
    panel = next(c for c in realm["clients"] if c["clientId"] == "conceptor-panel")
    panel["optionalClientScopes"] = ["conceptor-audit"]
    admins = next(g for g in realm["groups"] if g["name"] == "platform-admins")
    admins["subGroups"] = [
        {
            "name": "Équipe Nord/Sud",
            "realmRoles": ["rôle spécial + QA"],
            "clientRoles": {"conceptor-panel": ["lire tout"]},
            "subGroups": [{"name": "on call", "attributes": {"pager": ["yes"]}}],
        }
    ]
    realm["identityProviders"] = [
        {
            "alias": "corp-sso",
            "providerId": "oidc",
            "enabled": True,
            "config": {
                "authorizationUrl": "https://idp.example.invalid/auth",
                "tokenUrl": "https://idp.example.invalid/token",
                "clientId": "conceptor",
                "clientSecret": "not-a-secret",
                "clientAuthMethod": "client_secret_post",
            },
        }
    ]
    realm["identityProviderMappers"] = [
        {
            "name": "team from claim",
            "identityProviderAlias": "corp-sso",
            "identityProviderMapper": "oidc-user-attribute-idp-mapper",
            "config": {"claim": "team", "user.attribute": "team", "syncMode": "INHERIT"},
        }
    ]
    realm["users"].append(
        {
            "username": "chloé",
            "enabled": True,
            "email": "chloe@technova.dev",
            "firstName": "Chloé",
            "lastName": "Ops",
            "requiredActions": ["UPDATE_PASSWORD"],
            "realmRoles": ["opérateur"],
            "clientRoles": {"conceptor-panel": ["lire tout"]},
            "groups": ["/platform-admins/Équipe Nord/Sud/on call"],
        }
    )


async def test_file_edits_are_created_and_named(local_stack: LocalStack, tmp_path: Path) -> None:
    """Elements added to the file are each created and named, whatever their order; the next
    run is unchanged; the composite role works in a token."""
    async with realm_env(local_stack.settings, tmp_path) as (env, admin):
        await import_realm(env)
        edit_file(env, _additions)

        edited = await import_realm(env)

        assert edited.result.changed == [
            "+client-scope:conceptor-audit",
            "+client-scope-mapper:conceptor-audit/team claim",
            "~client:conceptor-panel",
            "+role:opérateur",
            "+role:rôle spécial + QA",
            "+client-role:conceptor-panel/lire tout",
            "+group:/platform-admins/Équipe Nord/Sud",
            "+group:/platform-admins/Équipe Nord/Sud/on call",
            "+user:chloé",
            "+identity-provider:corp-sso",
            "+identity-provider-mapper:corp-sso/team from claim",
        ]
        again = await import_realm(env)
        assert (again.result.outcome, again.writes) == ("unchanged", [])
        composite = await admin.json(f"/roles/{'rôle spécial + QA'}/composites")
        assert sorted(r["name"] for r in composite) == ["lire tout", "opérateur"]
        chloe = await admin.user_id("chloé")
        groups = await admin.json(f"/users/{chloe}/groups")
        assert [g["path"] for g in groups] == ["/platform-admins/Équipe Nord/Sud/on call"]
        panel = await admin.client_id("conceptor-panel")
        scopes = await admin.json(f"/clients/{panel}/optional-client-scopes")
        assert "conceptor-audit" in {s["name"] for s in scopes}


async def test_composite_listed_before_child_on_a_new_realm(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    """A new realm whose file lists a composite before its children is created whole."""
    async with realm_env(local_stack.settings, tmp_path) as (env, admin):
        edit_file(env, _additions)
        created = await import_realm(env)
        assert created.result.outcome == "created"
        again = await import_realm(env)
        assert (again.result.outcome, again.writes) == ("unchanged", [])
        composite = await admin.json(f"/roles/{'rôle spécial + QA'}/composites")
        assert sorted(r["name"] for r in composite) == ["lire tout", "opérateur"]


async def test_shuffled_lists_give_the_same_result(local_stack: LocalStack, tmp_path: Path) -> None:
    """Every list of the file shuffled: compared with the realm made from the original, nothing
    differs and nothing is written."""
    async with realm_env(local_stack.settings, tmp_path) as (env, _):
        edit_file(env, _additions)
        await import_realm(env)
        rng = random.Random(9)
        for _ in range(3):
            edit_file(env, lambda data: data.update(shuffled(data, rng)))
            run = await import_realm(env)
            assert (run.result.outcome, run.writes) == ("unchanged", [])


async def test_concurrent_imports_of_an_edit_both_converge(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    """Two imports of the same edit at once (runs under other ids may overlap): both finish,
    what one created the other accepts, and the realm then compares unchanged."""
    async with realm_env(local_stack.settings, tmp_path) as (env, _):
        await import_realm(env)
        edit_file(env, _additions)
        runs = await asyncio.gather(import_realm(env), import_realm(env))
        # Each run applied what it found missing when it read the realm: together, the edit.
        both = {c for run in runs for c in run.result.changed}
        assert "+group:/platform-admins/Équipe Nord/Sud/on call" in both
        assert "+user:chloé" in both
        again = await import_realm(env)
        assert (again.result.outcome, again.writes) == ("unchanged", [])
