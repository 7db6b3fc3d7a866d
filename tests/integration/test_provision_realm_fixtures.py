"""The generated realm fixtures (Keycloak's own exports, every element type) through the
reconciler: create, unchanged re-run with zero writes, drift repair, file edits, shuffling."""

from __future__ import annotations

import json
import random
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from conceptor.platform.devservices.stack import LocalStack
from conceptor.platform.settings import REPO_ROOT
from tests.integration.provision_realm_support import (
    edit_file,
    import_realm,
    q,
    realm_env,
    shuffled,
    sorted_lists,
)
from tests.integration.provision_support import ProvisionEnv, diff_paths

pytestmark = pytest.mark.integration
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "realms"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def install_fixture(env: ProvisionEnv, name: str) -> dict[str, Any]:
    """The fixture as this environment's realm file: its realm renamed, every id replaced by a
    fresh one consistently (two realms of one file collide on ids in one Keycloak)."""
    text = (FIXTURES / name).read_text()
    realm = json.loads(text)["realm"]
    fresh: dict[str, str] = {}
    text = _UUID.sub(lambda m: fresh.setdefault(m.group(0), str(uuid.uuid4())), text)
    for old in _other_ids(json.loads(text)):  # Keycloak's ids are not all UUIDs
        text = text.replace(f'"{old}"', f'"{uuid.uuid4().hex[:22]}"')
    text = text.replace(realm, env.realm)
    env.settings.realm_file.write_text(text)
    data: dict[str, Any] = json.loads(text)
    return data


def _other_ids(node: Any) -> set[str]:
    """`id` values that are not UUIDs (e.g. of an LDAP federation component)."""
    found: set[str] = set()
    if isinstance(node, dict):
        value = node.get("id")
        if isinstance(value, str) and not _UUID.fullmatch(value):
            found.add(value)
        for child in node.values():
            found |= _other_ids(child)
    elif isinstance(node, list):
        for child in node:
            found |= _other_ids(child)
    return found


@pytest.mark.parametrize("fixture", ["generated-small.json", "generated-large.json"])
async def test_fixture_created_then_unchanged(
    local_stack: LocalStack, tmp_path: Path, fixture: str
) -> None:
    """Created with one write; the re-run and a run of the shuffled file write nothing and say
    `unchanged`; the partial export is identical before and after."""
    async with realm_env(local_stack.settings, tmp_path) as (env, admin):
        data = install_fixture(env, fixture)
        first = await import_realm(env)
        assert (first.result.outcome, first.writes) == ("created", ["POST /realms"])
        total = first.result.counts["created"]
        assert total > 150
        assert data["adminEventsEnabled"] is True  # Keycloak records every admin write
        await admin.ok("POST", "/groups", {"name": "made by hand"})  # kept: additive
        events = await admin.admin_events()
        assert [e["operationType"] for e in events] == ["CREATE"]  # the event log works
        before = await admin.partial_export()

        again = await import_realm(env)
        assert again.writes == []
        assert await admin.admin_events() == events
        assert again.result.outcome == "unchanged"
        assert again.result.counts["unchanged"] == total
        after = await admin.partial_export()
        assert diff_paths(sorted_lists(before), sorted_lists(after)) == []

        rng = random.Random(17)
        edit_file(env, lambda r: r.update(shuffled(data, rng)))
        mixed = await import_realm(env)
        assert (mixed.result.outcome, mixed.writes) == ("unchanged", [])
        if any(c.get("authorizationSettings") for c in data["clients"]):
            # A policy of the client with authorization services deleted: imported again.
            app1 = await admin.client_id("app-01")
            authz = f"/clients/{app1}/authz/resource-server/policy"
            policies = await admin.json(authz)
            policy = next(p for p in policies if p["name"] == "Écriture des dossiers")
            await admin.ok("DELETE", f"{authz}/{policy['id']}")
            repaired = await import_realm(env)
            assert repaired.result.changed == ["~client-authorization:app-01"]
            assert repaired.writes == [
                f"POST /realms/{env.realm}/clients/{app1}/authz/resource-server/import"
            ]
            again = await import_realm(env)
            assert (again.result.outcome, again.writes) == ("unchanged", [])


# Keycloak 26's own export, and those Keycloak 18, 22, 24 and 25 wrote of the same realm.
_DRIFTED = [
    "generated-small.json",
    "kc18-fixture.json",
    "kc22-fixture.json",
    "kc24-fixture.json",
    "kc25-fixture.json",
]


@pytest.mark.parametrize("fixture", _DRIFTED)
async def test_fixture_drift_is_restored_and_named(
    local_stack: LocalStack, tmp_path: Path, fixture: str
) -> None:
    """One object of every managed kind deleted or changed in Keycloak: each is named, restored,
    and the next run writes nothing."""
    async with realm_env(local_stack.settings, tmp_path) as (env, admin):
        install_fixture(env, fixture)
        await import_realm(env)
        app0, app1 = await admin.client_id("app-00"), await admin.client_id("app-01")
        await admin.ok("DELETE", f"/clients/{app0}/roles/audit")
        mappers = await admin.json(f"/clients/{app0}/protocol-mappers/models")
        audience = next(m for m in mappers if m["name"] == "audience propre")
        await admin.ok("DELETE", f"/clients/{app0}/protocol-mappers/models/{audience['id']}")
        scopes = {s["name"]: s for s in await admin.json("/client-scopes")}
        await admin.ok("DELETE", f"/client-scopes/{scopes['tenant']['id']}")
        team = scopes["equipe+lecture"]
        scope_mapper = (await admin.json(f"/client-scopes/{team['id']}/protocol-mappers/models"))[0]
        await admin.ok(
            "DELETE", f"/client-scopes/{team['id']}/protocol-mappers/models/{scope_mapper['id']}"
        )
        deepest = "/Équipe Nord/Dév + Ops/Niveau 3 profond/Niveau 4 très profond"
        await admin.ok("DELETE", f"/groups/{await admin.group_id(deepest)}")
        await admin.ok("DELETE", f"/roles/{q('ops+sre')}")
        await admin.ok("DELETE", f"/users/{await admin.user_id('josé.müller+01')}")
        client = await admin.json(f"/clients/{app1}")
        flipped = not client["standardFlowEnabled"]
        await admin.ok("PUT", f"/clients/{app1}", {**client, "standardFlowEnabled": flipped})
        user_id = await admin.user_id("josé.müller+00")
        user = await admin.json(f"/users/{user_id}")
        await admin.ok("PUT", f"/users/{user_id}", {**user, "firstName": "Changé"})
        default_role = f"default-roles-{env.realm}"
        reader = await admin.json(f"/roles/{q('lecteur')}")
        await admin.ok("DELETE", f"/roles/{q(default_role)}/composites", [reader])
        components = await admin.json("/components?type=org.keycloak.keys.KeyProvider")
        by_name = {c["name"]: c for c in components}
        await admin.ok("DELETE", f"/components/{by_name['hmac fixture']['id']}")
        rsa = by_name["clé rsa fixture"]
        rsa_config = {**rsa["config"], "priority": ["1"]}
        await admin.ok("PUT", f"/components/{rsa['id']}", {**rsa, "config": rsa_config})
        flow = f"/authentication/flows/{q('navigateur à 2 facteurs')}/executions"
        cookie = next(e for e in await admin.json(flow) if e.get("providerId") == "auth-cookie")
        await admin.ok("PUT", flow, {**cookie, "requirement": "DISABLED"})
        redirect = next(
            c
            for c in (await admin.partial_export())["authenticatorConfig"]
            if c["alias"] == "redirection partenaire"
        )
        config = {**redirect, "config": {"defaultProvider": "autre"}}
        await admin.ok("PUT", f"/authentication/config/{redirect['id']}", config)
        provider = "/identity-provider/instances/partenaire-oidc"
        idp_mappers = await admin.json(f"{provider}/mappers")
        await admin.ok("DELETE", f"{provider}/mappers/{idp_mappers[0]['id']}")
        idp = await admin.json(provider)
        await admin.ok("PUT", provider, {**idp, "config": {**idp["config"], "defaultScope": "x"}})
        terms = await admin.json("/authentication/required-actions/TERMS_AND_CONDITIONS")
        await admin.ok(
            "PUT",
            "/authentication/required-actions/TERMS_AND_CONDITIONS",
            {**terms, "enabled": False},
        )
        account = await admin.json(f"/clients/{app0}/service-account-user")
        granted = await admin.json(f"/users/{account['id']}/role-mappings/realm")
        await admin.ok("DELETE", f"/users/{account['id']}/role-mappings/realm", granted[:1])

        repaired = await import_realm(env)

        changed = set(repaired.result.changed)
        expected = {
            "+client-role:app-00/audit",
            "+client-mapper:app-00/audience propre",
            "+client-scope:tenant",
            f"+client-scope-mapper:equipe+lecture/{scope_mapper['name']}",
            f"+group:{deepest}",
            "+role:ops+sre",
            "+user:josé.müller+01",
            "~client:app-01",
            "~user:josé.müller+00",
            f"~role:{default_role}",
            "~service-account:app-00",
            f"+identity-provider-mapper:partenaire-oidc/{idp_mappers[0]['name']}",
            "~identity-provider:partenaire-oidc",
            "~required-action:TERMS_AND_CONDITIONS",
            "+component:org.keycloak.keys.KeyProvider/hmac fixture",
            "~component:org.keycloak.keys.KeyProvider/clé rsa fixture",
            "~authentication-flow:navigateur à 2 facteurs",
            "~authenticator-config:redirection partenaire",
        }
        assert expected <= changed, sorted(expected - changed)
        again = await import_realm(env)
        assert (again.result.outcome, again.writes) == ("unchanged", [])


def _flows(realm: dict[str, Any]) -> None:
    """A new top-level flow with a subflow, executions and an authenticator config."""
    realm["authenticationFlows"] += [
        {
            "alias": "flux ajouté",
            "description": "cookie ou sous-flux",
            "providerId": "basic-flow",
            "topLevel": True,
            "builtIn": False,
            "authenticationExecutions": [
                {"authenticator": "auth-cookie", "requirement": "ALTERNATIVE", "priority": 10},
                {
                    "authenticatorFlow": True,
                    "flowAlias": "sous-flux ajouté",
                    "requirement": "ALTERNATIVE",
                    "priority": 20,
                },
            ],
        },
        {
            "alias": "sous-flux ajouté",
            "description": "formulaire",
            "providerId": "basic-flow",
            "topLevel": False,
            "builtIn": False,
            "authenticationExecutions": [
                {
                    "authenticator": "auth-username-password-form",
                    "requirement": "REQUIRED",
                    "priority": 10,
                },
                {
                    "authenticator": "identity-provider-redirector",
                    "authenticatorConfig": "redirection ajoutée",
                    "requirement": "DISABLED",
                    "priority": 20,
                },
            ],
        },
    ]
    realm["authenticatorConfig"].append(
        {"alias": "redirection ajoutée", "config": {"defaultProvider": "partenaire-oidc"}}
    )


def _additions(realm: dict[str, Any]) -> None:
    realm["roles"]["client"]["app-00"].append({"name": "nouveau rôle", "description": "ajouté"})
    realm["clientScopes"].append({"name": "portee-ajoutee", "protocol": "openid-connect"})
    nord = next(g for g in realm["groups"] if g["name"] == "Équipe Nord")
    nord["subGroups"].append({"name": "Sous-groupe + ajouté", "realmRoles": ["lecteur"]})
    realm["users"].append(
        {
            "username": "ajouté+02",
            "enabled": True,
            "groups": ["/Équipe Nord/Sous-groupe + ajouté"],
            "clientRoles": {"app-00": ["nouveau rôle"]},
        }
    )


async def test_fixture_file_edits_are_created(local_stack: LocalStack, tmp_path: Path) -> None:
    """A client role, a client scope, a subgroup, a user and a flow with a subflow and a config
    added to an export: each created."""
    async with realm_env(local_stack.settings, tmp_path) as (env, _):
        install_fixture(env, "generated-small.json")
        await import_realm(env)
        edit_file(env, _additions)
        edit_file(env, _flows)
        edited = await import_realm(env)
        assert edited.result.changed == [
            "+authentication-flow:flux ajouté",
            "+authentication-flow:sous-flux ajouté",
            "+authenticator-config:redirection ajoutée",
            "+client-scope:portee-ajoutee",
            "+client-role:app-00/nouveau rôle",
            "+group:/Équipe Nord/Sous-groupe + ajouté",
            "+user:ajouté+02",
        ]
        again = await import_realm(env)
        assert (again.result.outcome, again.writes) == ("unchanged", [])


async def test_legacy_fixture_imports_with_one_warning_per_cause(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    """A Keycloak 17-23 file: what Keycloak 26 drops or reads otherwise is a warning naming its
    path, not a refusal; the realm is created (hashed and clear credentials, service account,
    nested groups, built-in scopes it refers to) and the re-run writes nothing."""
    async with realm_env(local_stack.settings, tmp_path) as (env, admin):
        install_fixture(env, "legacy-kc17-23.json")
        first = await import_realm(env)
        assert (first.result.outcome, first.writes) == ("created", ["POST /realms"])
        again = await import_realm(env)
        assert (again.result.outcome, again.writes) == ("unchanged", [])
        scopes = {s["name"] for s in await admin.json("/client-scopes")}
    paths = [w.split(" (")[0].split(": ")[0] for w in first.result.warnings]
    assert paths == [
        "attributes.userProfileEnabled",
        "identityProviders[*].updateProfileFirstLoginMode",
        "requiredActions[*].alias",
        "components.org.keycloak.storage.UserStorageProvider[*].config.useTruststoreSpi",
        "clients[*].defaultClientScopes, clients[*].optionalClientScopes, "
        "defaultDefaultClientScopes, defaultOptionalClientScopes",
    ]
    assert {"acr", "profile", "roles", "web-origins"} <= scopes
