"""Create a realm whole with Keycloak's import; on a 400 or 500, find the element it cannot take."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
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
_REJECTIONS = (400, 500)


async def create_realm(admin: KeycloakAdmin, rep: dict[str, Any]) -> bool:
    """POST the whole representation; False when it exists already (a concurrent run made it)."""
    # Neither a 400 nor a 500 names the element at fault (a 400 says "unable to read contents
    # from stream" for any element it cannot read): the culprit is found by creating parts.
    resp = await admin.call("POST", "/realms", json=rep, ok=(201, 409, *_REJECTIONS))
    if resp.status_code == 409:
        return False
    if resp.status_code in _REJECTIONS:
        raise await _Narrowing(admin, rep, _answer(resp), _REJECTIONS).culprit()
    return True


async def conflict_culprit(admin: KeycloakAdmin, rep: dict[str, Any]) -> ApplicationError:
    """A 409 to creating a realm that then does not exist: a duplicate inside the file (or ids
    of another realm), found by creating parts as for a 400 or 500."""
    answer = (
        "HTTP 409: a duplicate, within the file or of an id another realm of this Keycloak "
        "holds; Keycloak's log names it"
    )
    return await _Narrowing(admin, rep, answer, (*_REJECTIONS, 409)).culprit()


def _answer(resp: httpx.Response) -> str:
    return f"HTTP {resp.status_code}: {resp.text[:300]}"


class _Narrowing:
    """Creates (then deletes) probe realms of parts of `rep` until the one Keycloak refuses."""

    def __init__(
        self, admin: KeycloakAdmin, rep: dict[str, Any], answer: str, rejections: tuple[int, ...]
    ) -> None:
        self.admin = admin
        self.rep = rep
        self.name = str(rep["realm"])
        self.answer = answer
        self.rejections = rejections

    async def taken(self, body: dict[str, Any]) -> bool:
        """Create, then delete, a probe of the realm; True if Keycloak took it."""
        resp = await self.admin.call(
            "POST", "/realms", json=body, ok=(201, *self.rejections), where=f"realm {self.name}"
        )
        activity.heartbeat()
        if resp.status_code in self.rejections:
            return False
        await self.admin.call("DELETE", f"/realms/{q(self.name)}", ok=(204, 404))
        return True

    async def first_failing(self, make: Callable[[int], dict[str, Any]], count: int) -> int:
        """Index of the item ending the shortest failing prefix (`make(n)`: the body with the
        first n items; `make(0)` is taken, `make(count)` fails)."""
        low, high = 0, count
        while high - low > 1:
            mid = (low + high) // 2
            if await self.taken(make(mid)):
                low = mid
            else:
                high = mid
        return high - 1

    def rejected(self, what: str) -> ApplicationError:
        return _rejected(self.name, what, self.answer)

    async def culprit(self) -> ApplicationError:
        """Create the realm bare, then with one element group more each time, until it fails."""
        rep, name = self.rep, self.name
        body = {k: v for k, v in rep.items() if k not in ELEMENT_KEYS}
        if not await self.taken(body):
            keys = sorted(k for k in body if k != "realm")
            if not await self.taken({"realm": name}):
                return self.rejected("its settings (everything but its elements)")
            i = await self.first_failing(
                lambda n: {"realm": name, **{k: body[k] for k in keys[:n]}}, len(keys)
            )
            return self.rejected(f"its setting {keys[i]!r}")
        for group in _GROUPS:
            present = [k for k in group if k in rep]
            if not present:
                continue
            if await self.taken({**body, **{k: rep[k] for k in present}}):
                body.update({k: rep[k] for k in present})
                continue
            return await self.element_at_fault(body, present[0], rep[present[0]])
        # Every group alone went in, the whole did not: a problem of Keycloak, retried.
        msg = f"realm {name}: Keycloak failed to create it ({self.answer}), yet took every part"
        raise KeycloakError(msg)

    async def element_at_fault(
        self, body: dict[str, Any], key: str, elements: Any
    ) -> ApplicationError:
        """The element of `key` (and its field, when that can be told) that Keycloak rejects."""
        if not isinstance(elements, list):
            return self.rejected(key)
        index = await self.first_failing(lambda n: {**body, key: elements[:n]}, len(elements))
        element = elements[index]
        label = next(
            (str(element[k]) for k in _NAMES if isinstance(element, dict) and k in element), ""
        )
        where = f"{key}[{index}]" + (f" ({label})" if label else "")
        field = await self.field(body, key, elements[:index], element)
        return self.rejected(where + (f", field {field!r}" if field else ""))

    async def field(
        self, body: dict[str, Any], key: str, before: list[Any], element: Any
    ) -> str | None:
        """The field of a rejected element that makes the difference, when the element without
        its other fields is taken (None when that cannot be told)."""
        if not isinstance(element, dict):
            return None
        ident = {k: element[k] for k in _NAMES if k in element}
        fields = sorted(k for k in element if k not in ident)
        if not fields or not await self.taken({**body, key: [*before, ident]}):
            return None

        def make(n: int) -> dict[str, Any]:
            return {**body, key: [*before, {**ident, **{k: element[k] for k in fields[:n]}}]}

        return str(fields[await self.first_failing(make, len(fields))])


def _rejected(realm: str, what: str, answer: str) -> ApplicationError:
    log = "; the reason is in Keycloak's log" if answer.startswith("HTTP 500") else ""
    msg = (
        f"realm {realm}: Keycloak cannot create it with {what} ({answer}){log}: correct that "
        "element in the realm file"
    )
    return ApplicationError(msg, type=REALM_REJECTED, non_retryable=True)
