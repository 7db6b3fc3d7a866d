"""What an import reads of the live users: brief unless the file says more, only granted links."""

from __future__ import annotations

from conceptor.activities.realm.normalise import items_of
from conceptor.activities.realm.snapshot import user_scope


def test_user_scope_reads_in_full_only_users_the_brief_representation_cannot_compare() -> None:
    """Attributes or required actions need the full representation; profile fields, empty
    lists and what the comparison ignores (ids, credentials, totp) do not."""
    rep = {
        "realm": "r",
        "users": [
            {"username": "Ada", "email": "ada@x.test", "enabled": True, "firstName": "Ada",
             "requiredActions": [], "attributes": {}, "totp": False, "notBefore": 0,
             "credentials": [{"type": "password", "value": "x"}], "id": "1"},
            {"username": "bob", "attributes": {"team": ["ops"]}},
            {"username": "cyd", "requiredActions": ["UPDATE_PASSWORD"]},
        ],
    }  # fmt: skip
    assert user_scope(items_of(rep)).detailed == {"bob", "cyd"}


def test_user_scope_names_the_roles_and_groups_the_file_grants() -> None:
    """Only their member lists are read: a grant the file does not make changes nothing."""
    rep = {
        "realm": "r",
        "users": [
            {"username": "ada", "realmRoles": ["admin"], "groups": ["/team/ops"]},
            {"username": "bob", "clientRoles": {"app": ["reader"]}, "groups": ["dev"]},
            {"username": "svc", "serviceAccountClientId": "app", "realmRoles": ["robot"]},
        ],
    }
    scope = user_scope(items_of(rep))
    assert scope.roles == {("realm", "admin"), ("client", "app", "reader")}
    assert scope.groups == {"/team/ops", "/dev"}
    assert scope.detailed == frozenset()
