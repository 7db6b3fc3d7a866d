"""A realm representation (the file, or Keycloak's export of the live realm) as comparable items."""

from __future__ import annotations

from typing import Any

from conceptor.activities.realm.items import Item, Ref
from conceptor.activities.realm.more_items import more_items
from conceptor.activities.realm.strip import IGNORED, strip

# Keys of a realm representation that are elements of their own; every other key is a realm
# setting (compared with, and written by, the realm PUT).
ELEMENT_KEYS = frozenset(
    {
        "roles", "clients", "clientScopes", "groups", "users", "identityProviders",
        "identityProviderMappers", "authenticationFlows", "authenticatorConfig",
        "requiredActions", "components", "scopeMappings", "clientScopeMappings",
        "defaultDefaultClientScopes", "defaultOptionalClientScopes", "defaultRole",
        "defaultRoles", "federatedUsers",
    }
)  # fmt: skip
# Server-assigned or informational: never compared, never written.
_ROLE_OWN = frozenset({"composite", "composites", "clientRole"})
_CLIENT_OWN = frozenset(
    {"protocolMappers", "defaultClientScopes", "optionalClientScopes", "authorizationSettings",
     "access", "authenticationFlowBindingOverrides"}
)  # fmt: skip
_USER_OWN = frozenset(
    {"credentials", "realmRoles", "clientRoles", "groups", "createdTimestamp", "totp", "access",
     "disableableCredentialTypes", "federatedIdentities", "serviceAccountClientId", "self",
     "applicationRoles", "socialLinks", "userProfileMetadata"}
)  # fmt: skip


def role_refs(realm: list[str] | None, client: dict[str, list[str]] | None) -> frozenset[Ref]:
    refs: set[Ref] = {("realm", r) for r in realm or []}
    refs |= {("client", c, r) for c, names in (client or {}).items() for r in names}
    return frozenset(refs)


def group_path(parent: str, name: str) -> str:
    # As Keycloak writes paths: a "/" inside a name is not escaped.
    return f"{parent}/{name}"


def items_of(rep: dict[str, Any]) -> dict[tuple[str, str], Item]:
    """Every element of a realm representation, keyed by (kind, name)."""
    out: dict[tuple[str, str], Item] = {}

    def add(item: Item) -> None:
        out.setdefault(item.key, item)  # a duplicate in a file: the first one counts

    name = str(rep.get("realm", ""))
    settings = {k: v for k, v in rep.items() if k not in ELEMENT_KEYS and k not in IGNORED}
    add(Item("realm", name, strip(settings), source=".", live_id=rep.get("id")))
    for key, which in (
        ("defaultDefaultClientScopes", "default"),
        ("defaultOptionalClientScopes", "optional"),
    ):
        if key in rep:
            scopes = frozenset(("scope", s) for s in rep[key])
            add(Item("default-client-scopes", which, {}, {"scopes": scopes}, source=key))
    _roles(rep, add)
    _clients(rep, add)
    for i, scope in enumerate(rep.get("clientScopes", [])):
        src = f"clientScopes[{i}]"
        body = strip({k: v for k, v in scope.items() if k != "protocolMappers"})
        add(Item("client-scope", scope["name"], body, source=src, live_id=scope.get("id")))
        for j, mapper in enumerate(scope.get("protocolMappers", [])):
            add(
                _mapper("client-scope-mapper", scope["name"], mapper, f"{src}.protocolMappers[{j}]")
            )
    for i, group in enumerate(rep.get("groups", [])):
        _group(group, "", f"groups[{i}]", add)
    _users(rep, add)
    more_items(rep, add)
    return out


def _mapper(kind: str, owner: str, mapper: dict[str, Any], src: str) -> Item:
    return Item(
        kind, f"{owner}/{mapper['name']}", strip(mapper), source=src,
        live_id=mapper.get("id"), parent=owner,
    )  # fmt: skip


def _role(kind: str, name: str, role: dict[str, Any], src: str, parent: str | None) -> Item:
    body = strip({k: v for k, v in role.items() if k not in _ROLE_OWN})
    composites = role.get("composites") or {}
    members = {"composites": role_refs(composites.get("realm"), composites.get("client"))}
    return Item(kind, name, body, members, source=src, live_id=role.get("id"), parent=parent)


def _roles(rep: dict[str, Any], add: Any) -> None:
    roles = rep.get("roles") or {}
    for i, role in enumerate(roles.get("realm", [])):
        add(_role("role", role["name"], role, f"roles.realm[{i}]", None))
    for client_id, client_roles in (roles.get("client") or {}).items():
        for i, role in enumerate(client_roles):
            src = f"roles.client.{client_id}[{i}]"
            add(_role("client-role", f"{client_id}/{role['name']}", role, src, client_id))
    # Exports before Keycloak 13 list the default roles by name instead of as a composite role.
    if rep.get("defaultRoles"):
        name = f"default-roles-{str(rep.get('realm', '')).lower()}"
        refs = frozenset(("realm", r) for r in rep["defaultRoles"])
        add(Item("role", name, {"name": name}, {"composites": refs}, source="defaultRoles"))


def _clients(rep: dict[str, Any], add: Any) -> None:
    flows = {f.get("id"): f.get("alias") for f in rep.get("authenticationFlows", [])}
    for i, client in enumerate(rep.get("clients", [])):
        cid, src = client["clientId"], f"clients[{i}]"
        body = strip({k: v for k, v in client.items() if k not in _CLIENT_OWN})
        # An empty value means "no override": Keycloak drops it.
        overrides = {
            k: v for k, v in (client.get("authenticationFlowBindingOverrides") or {}).items() if v
        }
        if overrides:  # exports hold flow ids; files may hold aliases: compare by alias
            body["authenticationFlowBindingOverrides"] = {
                k: flows.get(v, v) for k, v in overrides.items() if v
            }
        members: dict[str, frozenset[Ref]] = {
            "defaultClientScopes": frozenset(
                ("scope", s) for s in client.get("defaultClientScopes", [])
            ),
            "optionalClientScopes": frozenset(
                ("scope", s) for s in client.get("optionalClientScopes", [])
            ),
        }
        add(Item("client", cid, body, members, source=src, live_id=client.get("id")))
        for j, mapper in enumerate(client.get("protocolMappers", [])):
            add(_mapper("client-mapper", cid, mapper, f"{src}.protocolMappers[{j}]"))
        if client.get("authorizationSettings"):
            authz = strip(client["authorizationSettings"])
            add(
                Item(
                    "client-authorization",
                    cid,
                    authz,
                    source=f"{src}.authorizationSettings",
                    parent=cid,
                    extra={"raw": client["authorizationSettings"]},
                )
            )


def _group(group: dict[str, Any], parent: str, src: str, add: Any) -> None:
    path = group_path(parent, group["name"])
    body = strip({"name": group["name"], "attributes": group.get("attributes") or {}})
    members = {"roles": role_refs(group.get("realmRoles"), group.get("clientRoles"))}
    add(Item("group", path, body, members, source=src, live_id=group.get("id"), parent=parent))
    for i, sub in enumerate(group.get("subGroups") or []):
        _group(sub, path, f"{src}.subGroups[{i}]", add)


def _users(rep: dict[str, Any], add: Any) -> None:
    for i, user in enumerate(rep.get("users", [])):
        src = f"users[{i}]"
        roles = role_refs(user.get("realmRoles"), user.get("clientRoles"))
        if user.get("serviceAccountClientId"):
            cid = user["serviceAccountClientId"]
            add(
                Item(
                    "service-account", cid, {}, {"roles": roles}, source=src, live_id=user.get("id")
                )
            )
            continue
        body = strip({k: v for k, v in user.items() if k not in _USER_OWN})
        body["username"] = str(user["username"]).lower()  # Keycloak keeps usernames lower-case
        if isinstance(body.get("email"), str):
            body["email"] = body["email"].lower()
        groups = frozenset(
            ("group", g if g.startswith("/") else f"/{g}") for g in user.get("groups", [])
        )
        members = {"roles": roles, "groups": groups}
        extra = {"credentials": user.get("credentials") or []}
        add(
            Item(
                "user",
                body["username"],
                body,
                members,
                source=src,
                live_id=user.get("id"),
                extra=extra,
            )
        )
