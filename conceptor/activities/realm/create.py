"""Create a realm whole with Keycloak's import; on a 500, find the element it cannot take."""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from conceptor.activities.keycloak_admin import REALM_REJECTED, KeycloakAdmin, KeycloakError
from conceptor.activities.realm.normalise import ELEMENT_KEYS
from conceptor.activities.realm.snapshot import q

# Element groups added one at a time when Keycloak fails to create the realm whole: what an
# element refers to comes in an earlier group.
_GROUPS: tuple[tuple[str, ...], ...] = (
    ("clientScopes", "defaultDefaultClientScopes", "defaultOptionalClientScopes"),
    ("authenticationFlows", "authenticatorConfig"),
    ("clients",),
    ("roles", "defaultRole", "defaultRoles"),
    ("groups",),
    ("users", "federatedUsers"),
    ("identityProviders", "identityProviderMappers"),
    ("requiredActions",),
    ("components",),
    ("scopeMappings", "clientScopeMappings"),
)
_NAMES = ("clientId", "name", "alias", "username")


async def create_realm(admin: KeycloakAdmin, rep: dict[str, Any]) -> bool:
    """POST the whole representation; False when it exists already (a concurrent run made it)."""
    # A 4xx names no element: Keycloak checks the whole representation before creating any.
    resp = await admin.call("POST", "/realms", json=rep, ok=(201, 409, 500))
    if resp.status_code == 409:
        return False
    if resp.status_code == 500:
        raise await _culprit(admin, rep, resp.text[:300])
    return True


async def _try(admin: KeycloakAdmin, body: dict[str, Any]) -> bool:
    """Create, then delete, a probe of the realm; True if Keycloak took it."""
    resp = await admin.call(
        "POST", "/realms", json=body, ok=(201, 500), where=f"realm {body['realm']}"
    )
    activity.heartbeat()
    if resp.status_code == 500:
        return False
    await admin.call("DELETE", f"/realms/{q(body['realm'])}", ok=(204, 404))
    return True


async def _culprit(admin: KeycloakAdmin, rep: dict[str, Any], answer: str) -> ApplicationError:
    """Create the realm bare, then with one element group more each time, until it fails."""
    name = rep["realm"]
    body = {k: v for k, v in rep.items() if k not in ELEMENT_KEYS}
    if not await _try(admin, body):
        return _rejected(name, "its settings (everything but its elements)", answer)
    for group in _GROUPS:
        present = [k for k in group if k in rep]
        if not present:
            continue
        if await _try(admin, {**body, **{k: rep[k] for k in present}}):
            body.update({k: rep[k] for k in present})
            continue
        key = present[0]
        elements = rep[key]
        if not isinstance(elements, list):
            return _rejected(name, key, answer)
        # The shortest prefix of the list that fails ends with the culprit.
        low, high = 0, len(elements)  # elements[:low] is taken, elements[:high] fails
        while high - low > 1:
            mid = (low + high) // 2
            if await _try(admin, {**body, key: elements[:mid]}):
                low = mid
            else:
                high = mid
        element = elements[high - 1]
        label = next(
            (str(element[k]) for k in _NAMES if isinstance(element, dict) and k in element), ""
        )
        return _rejected(name, f"{key}[{high - 1}]" + (f" ({label})" if label else ""), answer)
    # Every group alone went in, the whole did not: a problem of Keycloak, retried.
    msg = f"realm {name}: Keycloak failed to create it (HTTP 500: {answer}), yet took every part"
    raise KeycloakError(msg)


def _rejected(realm: str, what: str, answer: str) -> ApplicationError:
    msg = (
        f"realm {realm}: Keycloak cannot create it with {what} (HTTP 500: {answer}); the reason "
        "is in Keycloak's log: correct that element in the realm file"
    )
    return ApplicationError(msg, type=REALM_REJECTED, non_retryable=True)
