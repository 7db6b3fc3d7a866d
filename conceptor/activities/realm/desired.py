"""The desired realm: the file with settings filled in, checked for what cannot be managed."""

from __future__ import annotations

from typing import Any

from temporalio.exceptions import ApplicationError

from conceptor.activities.reconcile import refuse
from conceptor.realmfile.notes import some_names
from conceptor.realmfile.scopes import BUILT_IN_SCOPES, undefined

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
    if not realm_exists:
        out.extend(_undefined_scopes(rep))
    linked = [u for u in rep.get("users", []) if u.get("federatedIdentities")]
    if realm_exists and linked:
        # Keycloak imports these with a new realm, but cannot show them for comparison.
        index = rep["users"].index(linked[0])
        where, whose = f"users[{index}].federatedIdentities", f"user {linked[0].get('username')!r}"
        if len(linked) > 1:
            names = some_names(str(u.get("username")) for u in linked)
            where, whose = "users[*].federatedIdentities", f"{len(linked)} users ({names})"
        out.append(
            refuse(
                where,
                f"identity-provider links of {whose} are only set when the realm is created",
                "link the account by logging in through the provider, or remove the field",
            )
        )
    return out


def _undefined_scopes(rep: dict[str, Any]) -> list[ApplicationError]:
    """A file that lists `clientScopes` gets no built-in scopes from Keycloak's import, which
    drops references to scopes the list lacks: a scope of the team's own must be defined."""
    return [
        refuse(
            ", ".join(sorted(paths)),
            f"refers to client scope {name!r}, which `clientScopes` does not define and which is "
            "not one of Keycloak's built-in scopes (Keycloak's import would drop the reference)",
            "add it to `clientScopes`, or remove the references",
        )
        for name, paths in sorted(undefined(rep).items())
        if name not in BUILT_IN_SCOPES
    ]
