"""The desired realm: the file with settings filled in, checked for what cannot be managed."""

from __future__ import annotations

from typing import Any

from temporalio.exceptions import ApplicationError

from conceptor.activities.reconcile import refuse

# Keys of exports older than Keycloak 12 that today's Keycloak no longer reads: importing
# them would drop them silently, so they are refused.
_LEGACY = {
    "applications": "use `clients` (applications were merged into clients)",
    "oauthClients": "use `clients` (OAuth clients were merged into clients)",
    "clientTemplates": "use `clientScopes` (client templates became client scopes)",
    "userFederationProviders": "use `components` of type org.keycloak.storage.UserStorageProvider",
    "userFederationMappers": "use `components` of type "
    "org.keycloak.storage.ldap.mappers.LDAPStorageMapper",
    "socialProviders": "use `identityProviders`",
}  # fmt: skip


def refusals(rep: dict[str, Any], *, realm_exists: bool) -> list[ApplicationError]:
    """What the file holds that provisioning cannot bring about, each naming its JSON path."""
    out = [
        refuse(key, "this key of old exports is not read by Keycloak any more", what)
        for key, what in _LEGACY.items()
        if rep.get(key)
    ]
    if rep.get("federatedUsers"):
        out.append(
            refuse(
                "federatedUsers",
                "users of a user-storage provider are not provisioned",
                "remove them: the provider supplies its users",
            )
        )
    out.extend(_obsolete(rep))
    if not realm_exists and "clientScopes" in rep:
        out.extend(_undefined_scopes(rep))
    if realm_exists:
        # Keycloak imports these with a new realm, but cannot show them for comparison.
        for i, user in enumerate(rep.get("users", [])):
            if user.get("federatedIdentities"):
                out.append(
                    refuse(
                        f"users[{i}].federatedIdentities",
                        f"identity-provider links of user {user.get('username')!r} are only "
                        "set when the realm is created",
                        "link the account by logging in through the provider, or remove the field",
                    )
                )
    return out


def _obsolete(rep: dict[str, Any]) -> list[ApplicationError]:
    """Fields of Keycloak 17-23 exports that Keycloak 24+ drops or reads differently."""
    out = []
    if "userProfileEnabled" in (rep.get("attributes") or {}):
        out.append(
            refuse(
                "attributes.userProfileEnabled",
                "Keycloak 24+ always has the declarative user profile and drops this attribute",
                "remove it (declare user attributes in the user-profile component)",
            )
        )
    for i, provider in enumerate(rep.get("identityProviders") or []):
        if "updateProfileFirstLoginMode" in provider:
            out.append(
                refuse(
                    f"identityProviders[{i}].updateProfileFirstLoginMode",
                    "Keycloak 24+ dropped this field",
                    "remove it (the first-broker-login flow's review-profile step decides)",
                )
            )
    for i, action in enumerate(rep.get("requiredActions") or []):
        if action.get("alias") == "terms_and_conditions":
            out.append(
                refuse(
                    f"requiredActions[{i}].alias",
                    "Keycloak 22+ names this required action TERMS_AND_CONDITIONS",
                    "rename alias and providerId to TERMS_AND_CONDITIONS",
                )
            )
    storage = (rep.get("components") or {}).get("org.keycloak.storage.UserStorageProvider") or []
    for i, component in enumerate(storage):
        if (component.get("config") or {}).get("useTruststoreSpi") == ["ldapsOnly"]:
            out.append(
                refuse(
                    f"components.org.keycloak.storage.UserStorageProvider[{i}].config."
                    "useTruststoreSpi",
                    "Keycloak 26 reads only `always` or `never` here (it turns `ldapsOnly` into "
                    "`always`)",
                    "write `always`",
                )
            )
    return out


def _undefined_scopes(rep: dict[str, Any]) -> list[ApplicationError]:
    """A file that lists `clientScopes` gets no built-in scopes from Keycloak's import: every
    scope it refers to must be in that list."""
    defined = {scope.get("name") for scope in rep.get("clientScopes") or []}
    refs = [
        (key, name)
        for key in ("defaultDefaultClientScopes", "defaultOptionalClientScopes")
        for name in rep.get(key) or []
    ]
    for i, client in enumerate(rep.get("clients") or []):
        for key in ("defaultClientScopes", "optionalClientScopes"):
            refs.extend((f"clients[{i}].{key}", name) for name in client.get(key) or [])
    missing: dict[str, list[str]] = {}
    for where, name in refs:
        if name not in defined:
            missing.setdefault(where, []).append(name)
    return [
        refuse(
            where,
            f"refers to client scopes {', '.join(sorted(names))} that `clientScopes` does not "
            "define (a realm created from a file that lists client scopes gets none of "
            "Keycloak's built-in ones)",
            "add them to `clientScopes`, or remove the references",
        )
        for where, names in missing.items()
    ]
