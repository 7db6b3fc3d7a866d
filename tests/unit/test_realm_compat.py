"""The pure rules of what Keycloak 26 keeps of older exports, and messages grouped by cause."""

from __future__ import annotations

import json

from conceptor.activities.realm.desired import refusals
from conceptor.activities.reconcile import summary
from conceptor.contracts import Change
from conceptor.realmfile.compat import adapt
from conceptor.realmfile.scopes import to_copy
from conceptor.realmfile.user_profile import undeclared_attributes
from tests.fixtures.realms import shapes


def test_adapt_rewrites_old_fields_and_leaves_the_input_alone() -> None:
    rep = shapes.kc25_identity_provider("r")
    adapted, warnings = adapt(rep)
    provider = adapted["identityProviders"][0]
    assert "updateProfileFirstLoginMode" not in provider
    assert provider["hideOnLogin"] is True
    assert "hideOnLoginPage" not in provider["config"]
    assert [c["fullScopeAllowed"] for c in adapted["clients"][:2]] == [True, True]
    assert rep["identityProviders"][0]["updateProfileFirstLoginMode"] == "on"
    assert len(warnings) == 3


def test_adapted_file_has_nothing_more_to_warn_about() -> None:
    """What `realm upgrade` writes: adapting it again changes nothing and warns of nothing."""
    for build in (
        shapes.kc25_identity_provider,
        shapes.kc23_generator,
        shapes.kc17_hand_edited,
        shapes.undeclared_attributes,
    ):
        once, warnings = adapt(build("r"))
        twice, again = adapt(once)
        assert warnings, build.__name__
        assert (twice, again) == (once, []), build.__name__


def test_terms_alias_renamed_unless_the_new_one_is_there() -> None:
    rep = shapes.kc17_hand_edited("r")
    adapted, _ = adapt(rep)
    assert [a["alias"] for a in adapted["requiredActions"]] == [
        "TERMS_AND_CONDITIONS",
        "VERIFY_EMAIL",
    ]
    rep["requiredActions"].append({"alias": "TERMS_AND_CONDITIONS", "providerId": "x"})
    adapted, _ = adapt(rep)
    assert [a["alias"] for a in adapted["requiredActions"]] == [
        "VERIFY_EMAIL",
        "TERMS_AND_CONDITIONS",
    ]


def test_user_attributes_kept_by_pre_24_files_and_declared_profiles() -> None:
    rep = shapes.undeclared_attributes("r", users=3)
    assert undeclared_attributes(rep) == {"employee-id", "site"}
    assert undeclared_attributes({**rep, "keycloakVersion": "22.0.5"}) == set()
    declared = {
        "attributes": [{"name": "username"}, {"name": "site"}],
        "unmanagedAttributePolicy": None,
    }
    profile = {"config": {"kc.user.profile.config": [json.dumps(declared)]}}
    with_profile = {
        **rep,
        "components": {"org.keycloak.userprofile.UserProfileProvider": [profile]},
    }
    assert undeclared_attributes(with_profile) == {"employee-id"}
    declared["unmanagedAttributePolicy"] = "ENABLED"
    profile["config"]["kc.user.profile.config"] = [json.dumps(declared)]
    assert undeclared_attributes(with_profile) == set()


def test_builtin_scopes_copied_only_where_keycloak_does_not_migrate_them() -> None:
    rep = shapes.kc17_hand_edited("r")
    assert to_copy(rep) == []  # acr (< 18) and basic (< 25) come from Keycloak's migration
    assert to_copy({**rep, "keycloakVersion": "24.0.5"}) == ["acr"]
    assert to_copy({**rep, "keycloakVersion": "25.0.6"}) == ["acr", "basic"]
    assert to_copy({k: v for k, v in rep.items() if k != "keycloakVersion"}) == ["acr", "basic"]


def test_a_scope_of_the_teams_own_that_is_not_defined_is_refused() -> None:
    rep = shapes.kc17_hand_edited("r")
    rep["clients"][0]["optionalClientScopes"] = ["maison"]
    found = [r.message for r in refusals(rep, realm_exists=False)]
    assert found == [
        "clients[*].optionalClientScopes: refers to client scope 'maison', which "
        "`clientScopes` does not define and which is not one of Keycloak's built-in scopes "
        "(Keycloak's import would drop the reference); add it to `clientScopes`, or remove "
        "the references"
    ]


def test_summary_groups_alike_changes_with_a_count() -> None:
    users = [
        Change(kind="user", name=f"u{i}", action="update", fields=["attributes"]) for i in range(7)
    ]
    one = Change(kind="client", name="app", action="update", fields=["secret"])
    assert summary([*users, one]) == (
        "7 of kind user (update: attributes): u0, u1, u2, u3, u4 and 2 more; "
        "client:app (update: secret)"
    )
