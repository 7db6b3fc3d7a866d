"""The realm's pure diff: file and live representations as items, compared without Keycloak."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from conceptor.activities.realm.desired import refusals
from conceptor.activities.realm.diff import compare, unmask
from conceptor.activities.realm.items import MASK
from conceptor.activities.realm.normalise import items_of
from conceptor.activities.realm.ownership import after, attributes_for, deletable_kinds, owned_of
from conceptor.activities.realm.refs import dangling


def _file() -> dict[str, Any]:
    return {
        "realm": "demo",
        "enabled": True,
        "smtpServer": {"host": "mail", "port": "25", "password": "s3cret"},
        "roles": {
            "realm": [
                {"name": "boss", "composites": {"realm": ["worker"], "client": {"app": ["read"]}}},
                {"name": "worker", "attributes": {"level": ["1"]}},
            ],
            "client": {"app": [{"name": "read"}]},
        },
        "clients": [
            {
                "clientId": "app",
                "redirectUris": ["http://a/*", "http://b/*"],
                "attributes": {"pkce.code.challenge.method": "S256"},
                "protocolMappers": [{"name": "aud", "protocolMapper": "oidc-audience-mapper"}],
                "defaultClientScopes": ["profile"],
            }
        ],
        "groups": [{"name": "A", "subGroups": [{"name": "B c", "realmRoles": ["worker"]}]}],
        "users": [{"username": "Zoé", "groups": ["/A/B c"], "realmRoles": ["boss"]}],
        "authenticationFlows": [
            {
                "alias": "mine",
                "authenticationExecutions": [
                    {"authenticator": "x", "priority": 10},
                    {"authenticator": "y", "priority": 20},
                ],
            }
        ],
    }


def _live(rep: dict[str, Any]) -> dict[str, Any]:
    """What Keycloak shows after importing `rep`: ids, defaults, strings, extra members."""
    live = copy.deepcopy(rep)
    live.update(id="r1", sslRequired="external", smtpServer={**rep["smtpServer"], "password": MASK})
    live["roles"]["realm"].append({"name": "default-roles-demo", "id": "x"})
    live["clients"][0].update(id="c1", enabled=True, defaultClientScopes=["profile", "email"])
    live["users"][0].update(username="zoé", id="u1", realmRoles=["boss", "default-roles-demo"])
    live["clientScopes"] = [{"name": "profile", "id": "s1"}, {"name": "email", "id": "s2"}]
    return live


def test_same_state_is_unchanged_everywhere() -> None:
    """Ids, defaults, masked secrets and extra grants on the live side compare equal."""
    rep = _file()
    diff = compare("realm demo", items_of(rep), items_of(_live(rep))).diff
    assert diff.is_empty
    assert [c.label for c in diff.changes] == [
        "authentication-flow:mine",
        "realm:demo",
        "client:app",
        "client-mapper:app/aud",
        "role:boss",
        "role:worker",
        "client-role:app/read",
        "group:/A",
        "group:/A/B c",
        "user:zoé",
    ]
    assert diff.desired_digest != diff.live_digest


def test_shuffled_lists_compare_equal() -> None:
    """Every list of the file in another order: same items, same digest of the desired state."""
    rep = _file()
    rng = random.Random(3)

    def shuffle(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: shuffle(v) for k, v in node.items()}
        if isinstance(node, list):
            items = [shuffle(v) for v in node]
            rng.shuffle(items)
            return items
        return node

    mixed = shuffle(rep)
    live = items_of(_live(rep))
    assert compare("r", items_of(mixed), live).diff.is_empty
    first = compare("r", items_of(rep), live).diff
    assert compare("r", items_of(mixed), live).diff.desired_digest == first.desired_digest


def test_missing_and_differing_elements_are_named_with_fields() -> None:
    """A lost grant, a changed attribute and a deleted subgroup: update, update, create."""
    rep = _file()
    live = _live(rep)
    live["users"][0]["realmRoles"] = ["default-roles-demo"]
    live["clients"][0]["attributes"]["pkce.code.challenge.method"] = "plain"
    live["groups"][0]["subGroups"] = []
    diff = compare("realm demo", items_of(rep), items_of(live)).diff
    pending = {c.label: (c.action, c.fields, c.source) for c in diff.pending}
    assert pending == {
        "client:app": ("update", ["attributes.pkce.code.challenge.method"], "clients[0]"),
        "group:/A/B c": ("create", [], "groups[0].subGroups[0]"),
        "user:zoé": ("update", ["roles[boss]"], "users[0]"),
    }


def test_absent_realm_makes_every_element_a_creation() -> None:
    diff = compare("realm demo", items_of(_file()), None).diff
    assert {c.action for c in diff.changes} == {"create"}
    assert diff.counts()["created"] == 10


def test_authorization_settings_that_differ_are_an_update() -> None:
    """A client's authorization settings compare as one object, named by the field."""
    rep = _file()
    rep["clients"][0]["authorizationSettings"] = {"policyEnforcementMode": "ENFORCING"}
    live = _live(rep)
    live["clients"][0]["authorizationSettings"] = {"policyEnforcementMode": "PERMISSIVE"}
    result = compare("realm demo", items_of(rep), items_of(live))
    assert result.refusals == []
    assert [(c.label, c.fields, c.source) for c in result.diff.pending] == [
        ("client-authorization:app", ["policyEnforcementMode"], "clients[0].authorizationSettings")
    ]


def test_flow_executions_compare_as_an_unordered_list() -> None:
    """A changed priority of a flow's execution is an update of that flow, naming the field."""
    rep = _file()
    live = _live(rep)
    live["authenticationFlows"][0]["authenticationExecutions"].reverse()
    assert compare("r", items_of(rep), items_of(live)).diff.is_empty
    live["authenticationFlows"][0]["authenticationExecutions"][0]["priority"] = 30
    pending = compare("r", items_of(rep), items_of(live)).diff.pending
    assert [(c.label, c.fields) for c in pending] == [
        ("authentication-flow:mine", ["authenticationExecutions"])
    ]


def test_masked_values_are_not_compared() -> None:
    assert unmask({"a": "clear", "b": 1}, {"a": MASK, "b": 2}) == {"a": MASK, "b": 1}
    assert unmask({"a": MASK}, {"a": "clear"}) == {"a": "clear"}
    assert unmask({"k": ["v"]}, {"k": [MASK]}) == {"k": [MASK]}


def test_deletes_only_owned_kinds_in_managed_mode() -> None:
    rep = _file()
    live = _live(rep)
    live["clients"].append({"clientId": "old", "id": "c2"})
    live["clients"].append({"clientId": "by-hand", "id": "c3"})
    owned = {"client": {"app", "old"}}
    additive = compare("r", items_of(rep), items_of(live), owned=owned).diff
    assert additive.is_empty
    managed = compare(
        "r", items_of(rep), items_of(live), deletable=deletable_kinds({"clients"}), owned=owned
    ).diff
    assert [(c.label, c.action) for c in managed.pending] == [("client:old", "delete")]


def test_ownership_round_trips_through_realm_attributes() -> None:
    items = items_of(_file())
    owned = after({}, list(items.values()), [])
    assert owned["client"] == {"app"}
    assert owned["group"] == {"/A", "/A/B c"}
    assert owned_of({"attributes": attributes_for(owned)}) == owned
    assert owned_of({"attributes": {"conceptor.owned.client": "not json"}}) == {}


def test_dangling_references_are_refused() -> None:
    rep = _file()
    rep["users"][0]["groups"] = ["/A/nope"]
    live = items_of(_live(_file()))
    found = dangling(items_of(rep), live)
    assert [r.message for r in found] == [
        "users[0].groups: user 'zoé' refers to group '/A/nope', which is neither in the file "
        "nor in the live realm; add group '/A/nope' to the file, or remove the reference"
    ]


def test_old_defaultroles_list_becomes_the_default_role_composites() -> None:
    rep = {"realm": "Old", "defaultRoles": ["offline_access", "worker"]}
    role = items_of(rep)[("role", "default-roles-old")]
    assert role.members["composites"] == {("realm", "offline_access"), ("realm", "worker")}


@pytest.mark.parametrize("key", ["applications", "clientTemplates", "userFederationProviders"])
def test_legacy_keys_are_refused(key: str) -> None:
    found = refusals({"realm": "r", key: [{"name": "x"}]}, realm_exists=False)
    assert [r.message.split(":")[0] for r in found] == [key]
