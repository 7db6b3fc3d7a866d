"""Built-in client scopes a file refers to without defining them: what Keycloak's import does.

A realm created from a file that lists `clientScopes` gets none of Keycloak's own scopes, and
Keycloak drops, silently, every reference to a scope the list lacks. Two of them come back by
Keycloak's migration of older exports (`acr` for files of Keycloak < 18, `basic` for < 25);
the others are copied, as this Keycloak defines them, from its `master` realm.
"""

from __future__ import annotations

import copy
from typing import Any

from conceptor.realmfile.notes import Notebook
from conceptor.realmfile.user_profile import major_version

BUILT_IN_SCOPES = frozenset(
    {"acr", "address", "basic", "email", "microprofile-jwt", "offline_access", "organization",
     "phone", "profile", "role_list", "roles", "saml_organization", "service_account",
     "web-origins"}
)  # fmt: skip
# Scopes Keycloak's import adds to files older than a version (its migrations).
_MIGRATED = {"acr": 18, "basic": 25}


def references(rep: dict[str, Any]) -> list[tuple[str, str]]:
    """(JSON path with `[*]`, scope name) of every client-scope reference in the file."""
    refs = [
        (key, name)
        for key in ("defaultDefaultClientScopes", "defaultOptionalClientScopes")
        for name in rep.get(key) or []
    ]
    for client in rep.get("clients") or []:
        for key in ("defaultClientScopes", "optionalClientScopes"):
            refs.extend((f"clients[*].{key}", name) for name in client.get(key) or [])
    return refs


def undefined(rep: dict[str, Any]) -> dict[str, set[str]]:
    """Scope name → paths referring to it, for names the file's `clientScopes` lacks (only a
    file that lists client scopes: otherwise Keycloak makes its own)."""
    if "clientScopes" not in rep:
        return {}
    defined = {scope.get("name") for scope in rep.get("clientScopes") or []}
    out: dict[str, set[str]] = {}
    for where, name in references(rep):
        if name not in defined:
            out.setdefault(name, set()).add(where)
    return out


def to_copy(rep: dict[str, Any]) -> list[str]:
    """Built-in scopes the file refers to, lacks, and Keycloak's import will not add itself."""
    major = major_version(rep)
    return sorted(
        name
        for name in undefined(rep)
        if name in BUILT_IN_SCOPES and not (major is not None and major < _MIGRATED.get(name, 0))
    )


def add_definitions(
    rep: dict[str, Any], definitions: dict[str, dict[str, Any]], notes: Notebook
) -> dict[str, Any]:
    """`rep` with the built-in scopes it lacks added to `clientScopes` from `definitions`
    (name → representation without server ids), each noted."""
    names = [n for n in to_copy(rep) if n in definitions]
    if not names:
        return rep
    out = copy.deepcopy(rep)
    paths = undefined(rep)
    where = sorted({p for name in names for p in paths[name]})
    for name in names:
        out["clientScopes"].append(copy.deepcopy(definitions[name]))
        notes.add(
            ", ".join(where),
            "refer to Keycloak's built-in client scopes, which `clientScopes` does not define "
            "(Keycloak's import would drop the references): they are created as this Keycloak "
            "defines them in realm master",
            noun="scopes",
            name=name,
        )
    return out
