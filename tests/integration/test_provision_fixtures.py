"""The realm fixtures keep their promise: valid exports holding every element type they claim."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conceptor.activities.realm_file import load_realm
from conceptor.platform.settings import Settings
from tests.fixtures.realms import generate as gen

FIXTURES = Path(gen.__file__).resolve().parent
GENERATED = {spec.file: spec for spec in gen.SPECS.values()}
LEGACY = "legacy-kc17-23.json"
ALL_FILES = sorted([*GENERATED, LEGACY])
# load_realm fills `${UPPER_CASE}` placeholders from settings and refuses unknown ones; Keycloak's
# own `${lower_case}` message keys must stay the only `${...}` in a fixture.
SETTINGS_PLACEHOLDER = re.compile(r"\$\{[A-Z][A-Z0-9_]*\}")


def read(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


def groups_under(groups: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for group in groups:
        yield group
        yield from groups_under(group.get("subGroups", []))


def by(items: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {item[key]: item for item in items}


@pytest.mark.parametrize("name", ALL_FILES)
def test_fixture_loads_under_its_own_realm_name(name: str) -> None:
    """Valid JSON, a realm object, and `load_realm` accepts it when settings name its realm."""
    text = (FIXTURES / name).read_text(encoding="utf-8")
    realm = json.loads(text)
    assert isinstance(realm, dict)
    assert not SETTINGS_PLACEHOLDER.search(text), SETTINGS_PLACEHOLDER.findall(text)[:5]
    settings = Settings(realm_name=realm["realm"], realm_file=FIXTURES / name)
    loaded = load_realm(FIXTURES / name, settings)
    assert loaded["realm"] == realm["realm"]


@pytest.mark.parametrize("name", ALL_FILES)
def test_fixture_realm_names_are_distinct(name: str) -> None:
    """Each fixture has its own realm, so tests can import several into one Keycloak."""
    names = {read(n)["realm"] for n in ALL_FILES}
    assert len(names) == len(ALL_FILES)
    assert read(name)["realm"] != "technova"


def test_sizes() -> None:
    large = (FIXTURES / gen.LARGE.file).stat().st_size
    small = (FIXTURES / gen.SMALL.file).stat().st_size
    legacy = (FIXTURES / LEGACY).stat().st_size
    assert large >= 200 * 1024, f"{gen.LARGE.file} is {large / 1024:.0f} KB"
    assert small < large / 2
    assert legacy < 64 * 1024


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_fixture_is_a_keycloak_export(name: str) -> None:
    realm = read(name)
    assert realm["keycloakVersion"].startswith("26."), "exported by the pinned Keycloak"
    assert realm["realm"] == GENERATED[name].realm


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_realm_settings(name: str) -> None:
    realm = read(name)
    assert realm["attributes"]["conceptor.fixture"] == realm["realm"]
    assert realm["smtpServer"]["host"] == "smtp.fixture.invalid"
    assert "length(10)" in realm["passwordPolicy"]
    assert (realm["otpPolicyDigits"], realm["otpPolicyPeriod"]) == (8, 45)
    assert realm["otpPolicyAlgorithm"] == "HmacSHA256"
    assert (realm["accessTokenLifespan"], realm["ssoSessionIdleTimeout"]) == (420, 3600)
    assert realm["eventsEnabled"] and realm["adminEventsEnabled"]
    assert "LOGIN" in realm["enabledEventTypes"]


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_roles_composites_and_default_role(name: str) -> None:
    realm, spec = read(name), GENERATED[name]
    roles = by(realm["roles"]["realm"], "name")
    for role in (gen.REALM_ROLE_READER, gen.REALM_ROLE_EDITOR, gen.REALM_ROLE_OPS):
        assert role in roles
    assert len(roles) >= 4 + spec.extra_realm_roles
    admin = roles[gen.REALM_ROLE_ADMIN]["composites"]
    # A realm role made of realm roles and of client roles.
    assert gen.REALM_ROLE_OPS in admin["realm"]
    assert "admin+" in admin["client"]["app-00"]
    client_roles = realm["roles"]["client"]
    for i in range(spec.clients):
        app = by(client_roles[f"app-{i:02d}"], "name")
        assert set(gen.CLIENT_ROLES) <= set(app)
        # A client role made of client roles and of a realm role.
        composite = app["admin+"]["composites"]
        assert composite["realm"] and "édition" in composite["client"][f"app-{i:02d}"]
    default = roles[realm["defaultRole"]["name"]]["composites"]
    assert gen.REALM_ROLE_READER in default["realm"]
    assert "lecture seule" in default["client"]["app-00"]


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_clients(name: str) -> None:
    realm, spec = read(name), GENERATED[name]
    clients = by(realm["clients"], "clientId")
    apps = [clients[f"app-{i:02d}"] for i in range(spec.clients)]
    for app in apps:
        assert len(app["protocolMappers"]) >= 3
        assert gen.SCOPE_TEAM in app["defaultClientScopes"]
        assert gen.SCOPE_TENANT in app["optionalClientScopes"]
        assert app["attributes"]["pkce.code.challenge.method"] == "S256"
    assert any(not app["fullScopeAllowed"] for app in apps)
    flows = by(realm["authenticationFlows"], "alias")
    assert (
        clients["app-00"]["authenticationFlowBindingOverrides"]["browser"] == flows[gen.FLOW]["id"]
    )
    # Service accounts with realm and client roles.
    accounts = [u for u in realm["users"] if u.get("serviceAccountClientId", "").startswith("app-")]
    assert accounts
    for account in accounts:
        assert gen.REALM_ROLE_READER in account["realmRoles"]
        assert "view-users" in account["clientRoles"]["realm-management"]
    if spec.saml:
        assert clients["urn:fixture:sp"]["protocol"] == "saml"
    if spec.authorization:
        assert clients["app-01"]["authorizationServicesEnabled"]
        authz = clients["app-01"]["authorizationSettings"]
        assert authz["resources"] and authz["scopes"]
        assert {p["type"] for p in authz["policies"]} >= {"role", "scope"}


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_client_scopes_and_scope_mappings(name: str) -> None:
    realm, spec = read(name), GENERATED[name]
    scopes = by(realm["clientScopes"], "name")
    for scope in (gen.SCOPE_TEAM, gen.SCOPE_TENANT):
        assert len(scopes[scope]["protocolMappers"]) >= 2
    assert len(set(scopes) - {"profile", "email"}) >= spec.client_scopes
    assert gen.SCOPE_TEAM in realm["defaultDefaultClientScopes"]
    assert gen.SCOPE_TENANT in realm["defaultOptionalClientScopes"]
    mappings = realm["scopeMappings"]
    assert any(m.get("clientScope") == gen.SCOPE_TEAM for m in mappings)
    assert any(m.get("client") == "app-00" for m in mappings)
    assert any(
        m.get("clientScope") == gen.SCOPE_TEAM for m in realm["clientScopeMappings"]["app-00"]
    )


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_groups(name: str) -> None:
    realm, spec = read(name), GENERATED[name]
    groups = list(groups_under(realm["groups"]))
    paths = {g["path"] for g in groups}
    deep = "/" + "/".join(gen.GROUP_PATH)
    assert deep in paths, "a branch four levels deep"
    assert any(gen.GROUP_SLASH in p for p in paths), "a `/` inside a group name"
    assert len(realm["groups"]) >= spec.top_groups
    assert all(g["attributes"] for g in groups if g["path"].startswith(f"/{gen.GROUP_PATH[0]}"))
    assert any(g["realmRoles"] for g in groups) and any(g["clientRoles"] for g in groups)
    assert realm["defaultGroups"] == [f"/{gen.GROUP_PATH[0]}"]


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_users(name: str) -> None:
    realm, spec = read(name), GENERATED[name]
    people = [u for u in realm["users"] if "serviceAccountClientId" not in u]
    assert len(people) == spec.users
    for user in people:
        assert user["username"].startswith("josé.müller+")
        assert user["attributes"]["departement"] == ["Île-de-France"]
        assert user["attributes"]["langues"] == ["fr", "de"]
        assert user["realmRoles"] and user["clientRoles"] and user["groups"]
        assert user["credentials"][0]["type"] == "password"
    assert any("TERMS_AND_CONDITIONS" in u["requiredActions"] for u in people)


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_flows_and_required_actions(name: str) -> None:
    realm = read(name)
    flows = by(realm["authenticationFlows"], "alias")
    top = flows[gen.FLOW]
    assert top["topLevel"] and not top["builtIn"]
    assert realm["browserFlow"] == gen.FLOW
    executions = top["authenticationExecutions"]
    assert any(e.get("flowAlias") == gen.FLOW_FORMS for e in executions)
    configs = {c["alias"] for c in realm["authenticatorConfig"]}
    assert any(e.get("authenticatorConfig") == gen.AUTH_CONFIG for e in executions)
    assert gen.AUTH_CONFIG in configs
    nested = flows[gen.FLOW_FORMS]["authenticationExecutions"]
    assert any(
        e.get("flowAlias") == gen.FLOW_OTP and e["requirement"] == "CONDITIONAL" for e in nested
    )
    actions = by(realm["requiredActions"], "alias")
    assert actions["TERMS_AND_CONDITIONS"]["enabled"]


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_identity_providers(name: str) -> None:
    realm, spec = read(name), GENERATED[name]
    providers = by(realm["identityProviders"], "alias")
    assert providers[gen.IDP_OIDC]["config"]["tokenUrl"].startswith("https://")
    mappers = realm["identityProviderMappers"]
    assert len([m for m in mappers if m["identityProviderAlias"] == gen.IDP_OIDC]) >= 4
    if spec.saml:
        assert providers[gen.IDP_SAML]["providerId"] == "saml"
        assert any(m["identityProviderAlias"] == gen.IDP_SAML for m in mappers)


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_components(name: str) -> None:
    realm, spec = read(name), GENERATED[name]
    components = realm["components"]
    keys = by(components["org.keycloak.keys.KeyProvider"], "name")
    assert keys["clé rsa fixture"]["config"]["priority"] == ["150"]
    assert keys["hmac fixture"]["config"]["algorithm"] == ["HS512"]
    profile = components["org.keycloak.userprofile.UserProfileProvider"][0]
    config = json.loads(profile["config"]["kc.user.profile.config"][0])
    assert config["unmanagedAttributePolicy"] == "ENABLED"
    assert "departement" in {a["name"] for a in config["attributes"]}
    if spec.ldap:
        ldap = components["org.keycloak.storage.UserStorageProvider"][0]
        assert ldap["providerId"] == "ldap" and ldap["config"]["enabled"] == ["false"]
        assert ldap["subComponents"]["org.keycloak.storage.ldap.mappers.LDAPStorageMapper"]


def test_legacy_fixture_shapes() -> None:
    """The Keycloak 17-23 shapes the README lists are all in the hand-written file."""
    realm = read(LEGACY)
    assert realm["keycloakVersion"].startswith("21.")
    assert realm["defaultRole"]["name"] in {r["name"] for r in realm["roles"]["realm"]}
    assert realm["clientProfiles"] == {"profiles": []}
    assert realm["clientPolicies"] == {"policies": []}
    assert realm["attributes"]["userProfileEnabled"] == "false"
    assert all(isinstance(v, str) for v in realm["attributes"].values())
    executions = [e for f in realm["authenticationFlows"] for e in f["authenticationExecutions"]]
    assert all("autheticatorFlow" in e and "authenticatorFlow" in e for e in executions)
    password = realm["users"][0]["credentials"][0]
    assert json.loads(password["credentialData"])["algorithm"] == "pbkdf2-sha256"
    assert "value" in json.loads(password["secretData"])
    clients = by(realm["clients"], "clientId")
    policies = clients["api-héritage"]["authorizationSettings"]["policies"]
    assert all(isinstance(v, str) for p in policies for v in p["config"].values())
    ldap = realm["components"]["org.keycloak.storage.UserStorageProvider"][0]
    assert ldap["subComponents"]["org.keycloak.storage.ldap.mappers.LDAPStorageMapper"]
    assert realm["identityProviders"][0]["updateProfileFirstLoginMode"] == "on"
    assert "terms_and_conditions" in {a["alias"] for a in realm["requiredActions"]}
    assert realm["otpSupportedApplications"][0].startswith("totpApp")
