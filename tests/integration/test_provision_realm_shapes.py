"""Realm files in the shapes teams have (Keycloak 17-26 exports, hand-edited files, a master
export, a config-cli example): each imports as Keycloak 26 keeps it, with one warning per
cause, converges, and re-runs with zero writes; what Keycloak refuses is narrowed down."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from conceptor.platform.devservices.stack import LocalStack
from conceptor.platform.keycloak_tokens import admin_token
from tests.fixtures.realms import shapes
from tests.integration.provision_realm_support import Admin, import_realm, realm_env
from tests.integration.provision_support import ProvisionEnv

pytestmark = pytest.mark.integration

_PROFILE_HINT = (
    "the realm's user profile does not declare this attribute and Keycloak 24+ drops "
    "undeclared attributes: declare it in the user profile "
    "(components.org.keycloak.userprofile.UserProfileProvider), or set its "
    "`unmanagedAttributePolicy`"
)


def write(env: ProvisionEnv, rep: dict[str, Any]) -> None:
    env.settings.realm_file.write_text(json.dumps(rep, ensure_ascii=False))


async def converges(env: ProvisionEnv) -> list[str]:
    """Created in one write; the re-run writes nothing and warns the same. Its warnings."""
    first = await import_realm(env)
    assert (first.result.outcome, first.writes) == ("created", ["POST /realms"])
    again = await import_realm(env)
    assert (again.result.outcome, again.writes) == ("unchanged", [])
    assert again.result.warnings == first.result.warnings
    return first.result.warnings


async def client_of(admin: Admin, client_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = await admin.json(f"/clients?clientId={client_id}")
    return found[0]


async def test_kc25_export_with_identity_provider(local_stack: LocalStack, tmp_path: Path) -> None:
    """Fields Keycloak 26 drops, moves or sets itself are warnings, and the realm converges."""
    async with realm_env(local_stack.settings, tmp_path) as (env, admin):
        write(env, shapes.kc25_identity_provider(env.realm))
        warnings = await converges(env)
        provider = await admin.json("/identity-provider/instances/partner-sso")
        cli = await client_of(admin, "admin-cli")
    assert warnings == [
        "identityProviders[*].updateProfileFirstLoginMode (1 identity providers: partner-sso): "
        "dropped by Keycloak 24+: the first-broker-login flow decides",
        "identityProviders[*].config.hideOnLoginPage (1 identity providers: partner-sso): "
        "moved by Keycloak 26 to identityProviders[*].hideOnLogin",
        "clients[*].fullScopeAllowed (2 built-in clients: admin-cli, security-admin-console): "
        "set to true by Keycloak 26's import of an export of Keycloak < 26 (its migration of "
        "the built-in admin clients)",
    ]
    assert provider["hideOnLogin"] is True
    assert "hideOnLoginPage" not in provider["config"]
    assert cli["fullScopeAllowed"] is True


async def test_kc23_generator_realm_with_public_client_secrets(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    """Secrets of public clients are ignored by Keycloak, said once; a confidential client's
    secret is set; free-form user attributes of a pre-24 file are kept."""
    async with realm_env(local_stack.settings, tmp_path) as (env, admin):
        write(env, shapes.kc23_generator(env.realm))
        warnings = await converges(env)
        internal = await client_of(admin, "internal")
        secret = await admin.json(f"/clients/{internal['id']}/client-secret")
        users = await admin.json("/users?username=admin&exact=true&briefRepresentation=false")
    assert warnings == [
        "attributes.userProfileEnabled: dropped by Keycloak 24+: the declarative user profile "
        "is always on",
        "clients[*].secret (6 public clients: account, account-console, admin-cli, web_app, "
        "mobile_app and 1 more): ignored by Keycloak: a public client has no secret",
        "users[*].attributes.locale (1 users: admin): dropped by Keycloak: the realm does not "
        "switch internationalization on (`internationalizationEnabled`)",
    ]
    assert secret["value"] == "internal-secret"
    assert users[0]["attributes"]["employee-id"] == ["E-1"]  # a pre-24 file keeps its own


async def test_kc17_hand_edited_file(local_stack: LocalStack, tmp_path: Path) -> None:
    """The old terms alias is renamed as Keycloak does; `acr` and `basic`, which the file
    refers to without defining, come from Keycloak's own migration of such files."""
    async with realm_env(local_stack.settings, tmp_path) as (env, admin):
        write(env, shapes.kc17_hand_edited(env.realm))
        warnings = await converges(env)
        boutique = await client_of(admin, "boutique")
        actions = await admin.json("/authentication/required-actions")
    assert warnings == [
        "requiredActions[*].alias (1 required actions: terms_and_conditions): "
        "`terms_and_conditions` is named TERMS_AND_CONDITIONS by Keycloak 22+ (alias and "
        "providerId)"
    ]
    assert {"acr", "basic", "email", "profile"} <= set(boutique["defaultClientScopes"])
    assert "TERMS_AND_CONDITIONS" in {a["alias"] for a in actions}


async def test_builtin_scope_the_file_does_not_define(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    """A file of today (no migration) that refers to `basic` and `web-origins` without defining
    them: both are created as Keycloak defines them, said once, and the client has them."""
    async with realm_env(local_stack.settings, tmp_path) as (env, admin):
        rep = shapes.kc17_hand_edited(env.realm)
        del rep["keycloakVersion"]
        rep["requiredActions"] = []
        rep["clients"][0]["defaultClientScopes"] = ["basic", "web-origins", "email"]
        rep["defaultDefaultClientScopes"] = ["email", "basic"]
        write(env, rep)
        warnings = await converges(env)
        boutique = await client_of(admin, "boutique")
        scopes = {s["name"]: s for s in await admin.json("/client-scopes")}
    assert warnings == [
        "clients[*].defaultClientScopes, defaultDefaultClientScopes (2 scopes: basic, "
        "web-origins): refer to Keycloak's built-in client scopes, which `clientScopes` does "
        "not define (Keycloak's import would drop the references): they are created as this "
        "Keycloak defines them in realm master"
    ]
    assert {"basic", "web-origins", "email"} <= set(boutique["defaultClientScopes"])
    assert {m["name"] for m in scopes["basic"]["protocolMappers"]} >= {"sub"}


async def test_master_export_under_another_name(local_stack: LocalStack, tmp_path: Path) -> None:
    """Keycloak 26's own export of realm master, imported under another name: its realm
    clients become ordinary clients (`realm_client` is Keycloak's to set), and it converges."""
    settings = local_stack.settings
    async with httpx.AsyncClient(timeout=60) as http:
        token = await admin_token(settings, http)
        resp = await http.post(
            f"{settings.keycloak_url}/admin/realms/master/partial-export"
            "?exportClients=true&exportGroupsAndRoles=true",
            headers={"Authorization": f"Bearer {token}"},
        )
    resp.raise_for_status()
    async with realm_env(settings, tmp_path) as (env, admin):
        text = json.dumps(_without_ids(resp.json())).replace('"master"', f'"{env.realm}"')
        rep = json.loads(text)
        rep["realm"] = env.realm
        write(env, rep)
        warnings = await converges(env)
        master_client = await client_of(admin, "master-realm")
    # Every `<realm>-realm` client of master at the time (other tests' realms too).
    assert warnings[0].startswith("clients[*].attributes.realm_client (")
    assert "master-realm" in warnings[0]
    assert warnings[0].endswith(
        "set by Keycloak itself: it marks a realm's own clients (broker, realm-management, "
        "and <realm>-realm in master)"
    )
    assert master_client["attributes"].get("realm_client") in (None, "false")


def _without_ids(node: Any) -> Any:
    """Two realms of one export collide on ids in one Keycloak: Keycloak assigns new ones."""
    if isinstance(node, dict):
        return {k: _without_ids(v) for k, v in node.items() if k not in ("id", "containerId")}
    if isinstance(node, list):
        return [_without_ids(v) for v in node]
    return node


async def test_a_400_on_creation_names_the_element_and_field(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    """Keycloak's "unable to read contents from stream" is narrowed down to the element and
    its field; no probe realm is left behind."""
    async with realm_env(local_stack.settings, tmp_path) as (env, admin):
        write(env, shapes.config_cli_example(env.realm))
        with pytest.raises(ApplicationError) as info:
            await import_realm(env)
        left = await admin.call("GET", "")
    assert info.value.non_retryable
    assert info.value.message == (
        f"realm {env.realm}: Keycloak cannot create it with clients[1] (back-office), field "
        '\'redirectUris\' (HTTP 400: {"errorMessage":"unable to read contents from stream"}): '
        "correct that element in the realm file"
    )
    assert left.status_code == 404


async def test_undeclared_user_attributes_are_said_once(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    """500 users with attributes the user profile does not declare: one warning per attribute
    (a count and the first names), and the realm converges without them."""
    async with realm_env(local_stack.settings, tmp_path) as (env, admin):
        write(env, shapes.undeclared_attributes(env.realm))
        warnings = await converges(env)
        users = await admin.json("/users?username=agent-0007&exact=true&briefRepresentation=false")
    names = "agent-0000, agent-0001, agent-0002, agent-0003, agent-0004 and 495 more"
    assert warnings == [
        f"users[*].attributes.employee-id (500 users: {names}): {_PROFILE_HINT}",
        f"users[*].attributes.site (500 users: {names}): {_PROFILE_HINT}",
    ]
    assert "employee-id" not in (users[0].get("attributes") or {})


async def test_a_409_without_a_realm_names_the_duplicate(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    """A file Keycloak answers 409 for although no such realm exists (here the built-in
    `account-console` listed without `account`) is narrowed down to the element, not retried."""
    async with realm_env(local_stack.settings, tmp_path) as (env, admin):
        rep = shapes.kc23_generator(env.realm)
        rep["clients"] = [c for c in rep["clients"] if c["clientId"] != "account"]
        write(env, rep)
        with pytest.raises(ApplicationError) as info:
            await import_realm(env)
        left = await admin.call("GET", "")
    assert info.value.non_retryable
    assert info.value.message.startswith(
        f"realm {env.realm}: Keycloak cannot create it with clients[0] (account-console)"
    )
    assert "(HTTP 409: a duplicate" in info.value.message
    assert left.status_code == 404
