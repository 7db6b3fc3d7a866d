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
