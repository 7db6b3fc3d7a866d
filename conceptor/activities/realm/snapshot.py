"""Read the live realm in the file's shape: Keycloak's partial export, plus users and secrets.

Users and their links are read in bulk, so the cost grows with pages, not with users. With
Conceptor's Keycloak extension: a page of users with their grants and groups per call. Without
it (an older set-up, a Keycloak image): the admin API's user listing page by page, then the
members of every role and group, inverted into each user's `realmRoles`, `clientRoles` and
`groups` (the shape a realm export gives them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from conceptor.activities.keycloak_admin import KeycloakAdmin, KeycloakError
from conceptor.activities.realm.items import Item, Ref
from conceptor.activities.realm.progress import advance, phase

_READS_AT_ONCE = 8  # concurrent reads per realm: fast, without flooding a dev Keycloak
_USERS_PAGE = 500  # full user representations per page
_MEMBERS_PAGE = 1000  # brief representations per page of a role's or group's members
_PAGES_AHEAD = 4  # pages read at once past a full one: a long list costs a few round trips
_DETAILED_ONE_BY_ONE = 200  # users read in full one call each; more: the listing in full
_BULK_PAGE = 1000  # users with their grants and groups per call of the extension
_BULK_AT_ONCE = 2  # pages of the extension read at once: Keycloak answers each on a core
_USER_STORAGE = "org.keycloak.storage.UserStorageProvider"
# What Keycloak's brief user representation holds.
BRIEF_USER_KEYS = frozenset(
    {"id", "username", "createdTimestamp", "firstName", "lastName", "email", "enabled",
     "emailVerified", "federationLink"}
)  # fmt: skip
_NOTHING: tuple[Any, ...] = (None, [], {}, "")  # a field that says nothing, as compared

Get = Callable[[str], Awaitable[Any]]


def q(value: str) -> str:
    """One URL path segment: accents, `+`, spaces and `/` quoted."""
    return quote(value, safe="")


@dataclass(frozen=True)
class UserScope:
    """What comparing the file's users needs of the live ones: which to read in full (the file
    says more of them than the brief representation holds: attributes, required actions...),
    and the members of which roles and groups (those the file grants: grants are only added,
    so a live user's other grants never make a difference).

    Full representations cost Keycloak ten times as much (it computes each user's profile),
    and most member lists are of built-in roles no file grants.
    """

    detailed: frozenset[str]  # lower-case usernames
    roles: frozenset[Ref]  # ("realm", role) and ("client", clientId, role)
    groups: frozenset[str]  # paths


def user_scope(desired: dict[tuple[str, str], Item]) -> UserScope:
    users = [item for (kind, _), item in desired.items() if kind == "user"]
    detailed = {
        u.name
        for u in users
        if any(k not in BRIEF_USER_KEYS and v not in _NOTHING for k, v in u.body.items())
    }
    roles = {ref for u in users for ref in u.members.get("roles", frozenset())}
    groups = {ref[1] for u in users for ref in u.members.get("groups", frozenset())}
    return UserScope(frozenset(detailed), frozenset(roles), frozenset(groups))


async def read_live(
    admin: KeycloakAdmin,
    realm: str,
    *,
    secrets_of: set[str],
    scope: UserScope | None = None,
) -> dict[str, Any] | None:
    """The live realm as a representation (None when absent); client secrets of `secrets_of`.

    Users as `scope` says (`user_scope` of the file); None: every user in full with every
    grant and group, as an export holds them.
    """
    base = f"/realms/{q(realm)}"
    phase("reading the live realm")
    detailed = None if scope is None else scope.detailed
    # The first reads go out together, and Keycloak answers each on a core: in a Keycloak just
    # started, each costs a second or more of loading its code, one after another it was the
    # longest part of a first `tilt up`. The first page of users is read on the chance that
    # the extension serves the realm (it is dropped when the realm federates its users).
    export, count, first_page = await asyncio.gather(
        admin.call(
            "POST",
            f"{base}/partial-export?exportClients=true&exportGroupsAndRoles=true",
            ok=(200, 404),
            read_only=True,
        ),
        admin.call("GET", f"{base}/users/count", ok=(200, 404)),
        _first_bulk_page(admin, realm, detailed),
    )
    if export.status_code == 404 or count.status_code == 404:
        phase("the live realm is absent")
        return None
    rep: dict[str, Any] = orjson.loads(export.content)
    limit = asyncio.Semaphore(_READS_AT_ONCE)

    async def get(path: str) -> Any:
        async with limit:
            return await admin.get_json(path)

    async def secret(client: dict[str, Any]) -> None:
        found = await get(f"{base}/clients/{client['id']}/client-secret")
        client["secret"] = found.get("value")

    masked = [
        c for c in rep.get("clients", [])
        if c.get("clientId") in secrets_of and not c.get("publicClient") and c.get("id")
    ]  # fmt: skip
    total = int(orjson.loads(count.content))
    phase("reading the live realm", users=total)
    if await _in_bulk(admin, rep):
        users, *_ = await asyncio.gather(
            _bulk_users(admin, get, realm, total, rep, scope, first_page),
            *(secret(c) for c in masked),
        )
    else:
        users, links, *_ = await asyncio.gather(
            _users(get, base, total, None if scope is None else scope.detailed),
            _links(get, base, rep, scope),
            *(secret(c) for c in masked),
        )
        for user in users:
            user.update(links.of(user["id"]))
    hidden = [u for u in rep.get("users", []) if u.get("serviceAccountClientId")]
    # Service accounts keep the export's own links.
    rep["users"] = [u for u in users if not u.get("serviceAccountClientId")] + hidden
    phase("the live realm is read", users=len(rep["users"]))  # then: writes, if any
    return rep


async def _users(
    get: Get, base: str, total: int, detailed: frozenset[str] | None
) -> list[dict[str, Any]]:
    """Every user in Keycloak's listing order: in brief, but those of `detailed` in full
    (one call each; past _DETAILED_ONE_BY_ONE, the whole listing in full)."""
    whole = _in_full(detailed)
    path = f"{base}/users?briefRepresentation={'false' if whole else 'true'}"
    users = await _paged(get, path, _USERS_PAGE, expected=total, what="users")
    # A user created while paging shifts the next pages: one may come twice.
    unique = {u["id"]: u for u in reversed(users)}
    users = [u for u in users if unique.pop(u["id"], None) is not None]
    if whole or not detailed:
        return users

    async def full(user: dict[str, Any]) -> dict[str, Any]:
        if user["username"] not in detailed:
            return user
        found: dict[str, Any] = await get(f"{base}/users/{user['id']}")
        return found

    return list(await asyncio.gather(*(full(u) for u in users)))


async def _in_bulk(admin: KeycloakAdmin, rep: dict[str, Any]) -> bool:
    """Users read through the extension: when set so, when it answers, and when every user is
    in Keycloak's database (a user store such as LDAP is asked through the admin API)."""
    stores = (rep.get("components") or {}).get(_USER_STORAGE) or []
    return not stores and await _extension_serves(admin)


async def _extension_serves(admin: KeycloakAdmin) -> bool:
    """The extension's users-bulk read is set to be used and this Keycloak serves it."""
    return admin.settings.realm_bulk_read and await admin.bulk_reads()


def _in_full(detailed: frozenset[str] | None) -> bool:
    """Every user read in full: all are asked for, or too many to read one call each."""
    return detailed is None or len(detailed) > _DETAILED_ONE_BY_ONE


def _bulk_path(realm: str, detailed: frozenset[str] | None) -> str:
    return f"/realms/{q(realm)}/users-bulk?full={'true' if _in_full(detailed) else 'false'}"


async def _first_bulk_page(
    admin: KeycloakAdmin, realm: str, detailed: frozenset[str] | None
) -> list[dict[str, Any]] | None:
    """The extension's first page of users, when it serves this Keycloak and the realm exists
    (None otherwise: the read then goes as it would without it)."""
    if not await _extension_serves(admin):
        return None
    try:
        page: list[dict[str, Any]] = await admin.extension(
            f"{_bulk_path(realm, detailed)}&first=0&max={_BULK_PAGE}"
        )
    except KeycloakError:
        return None  # no such realm (yet): the partial export says which
    return page


async def _bulk_users(
    admin: KeycloakAdmin,
    get: Get,
    realm: str,
    total: int,
    rep: dict[str, Any],
    scope: UserScope | None,
    first_page: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Every user with its grants and groups, from the extension a page a call; the same
    users, fields, grants and groups as `_users` and `_links` give.

    The extension gives every direct grant and group; kept are those the admin API path reads
    (roles and groups of the partial export that `scope` names), so both paths give one diff.
    """
    detailed = None if scope is None else scope.detailed
    whole = _in_full(detailed)
    path = _bulk_path(realm, detailed)
    limit = asyncio.Semaphore(_BULK_AT_ONCE)
    first = f"{path}&first=0&max={_BULK_PAGE}"

    async def ext(url: str) -> Any:
        if url == first and first_page is not None:
            return first_page  # read already, alongside the partial export
        async with limit:
            return await admin.extension(url)

    users = await _paged(ext, path, _BULK_PAGE, expected=total, what="users")
    unique = {u["id"]: u for u in reversed(users)}  # a user created while paging: once
    users = [u for u in users if unique.pop(u["id"], None) is not None]
    keep = _kept_links(rep, scope)
    for user in users:
        user["realmRoles"] = [r for r in user.get("realmRoles", []) if ("realm", r) in keep]
        client_roles = {
            cid: kept
            for cid, names in (user.get("clientRoles") or {}).items()
            if (kept := [r for r in names if ("client", cid, r) in keep])
        }
        user["clientRoles"] = client_roles
        user["groups"] = [g for g in user.get("groups", []) if ("group", g) in keep]
    if whole or not detailed:
        return users

    async def full(user: dict[str, Any]) -> dict[str, Any]:
        if user["username"] not in detailed:
            return user
        found: dict[str, Any] = await get(f"/realms/{q(realm)}/users/{user['id']}")
        links = ("realmRoles", "clientRoles", "groups")
        return {**found, **{k: user[k] for k in links}}

    return list(await asyncio.gather(*(full(u) for u in users)))


def _kept_links(rep: dict[str, Any], scope: UserScope | None) -> set[Ref]:
    """The roles and groups whose members `_links` reads: the export's, as `scope` says."""
    roles = rep.get("roles") or {}
    client_ids = {c.get("clientId") for c in rep.get("clients", []) if c.get("id")}
    refs: set[Ref] = {("realm", r["name"]) for r in roles.get("realm", [])}
    refs |= {
        ("client", cid, r["name"])
        for cid, client_roles in (roles.get("client") or {}).items()
        if cid in client_ids
        for r in client_roles
    }
    refs |= {("group", g["path"]) for g in _all_groups(rep.get("groups", []), "")}
    if scope is None:
        return refs
    return {r for r in refs if (r in scope.roles if r[0] != "group" else r[1] in scope.groups)}


class _Links:
    """Each user's direct realm roles, client roles (by clientId) and groups (by path)."""

    def __init__(self) -> None:
        self.realm_roles: dict[str, list[str]] = {}
        self.client_roles: dict[str, dict[str, list[str]]] = {}
        self.groups: dict[str, list[str]] = {}

    def of(self, user_id: str) -> dict[str, Any]:
        return {
            "realmRoles": self.realm_roles.get(user_id, []),
            "clientRoles": self.client_roles.get(user_id, {}),
            "groups": self.groups.get(user_id, []),
        }


async def _links(get: Get, base: str, rep: dict[str, Any], scope: UserScope | None) -> _Links:
    """The members of every realm role, client role and group (subgroups too) `scope` names
    (None: all), by user."""
    links = _Links()
    roles = rep.get("roles") or {}
    client_ids = {c.get("clientId"): c.get("id") for c in rep.get("clients", [])}

    def wanted(ref: Ref) -> bool:
        if scope is None:
            return True
        return ref in scope.roles if ref[0] != "group" else ref[1] in scope.groups

    async def realm_role(name: str) -> None:
        path = f"{base}/roles/{q(name)}/users?briefRepresentation=true"
        for member in await _paged(get, path, _MEMBERS_PAGE):
            links.realm_roles.setdefault(member["id"], []).append(name)

    async def client_role(client_id: str, uuid: str, name: str) -> None:
        path = f"{base}/clients/{uuid}/roles/{q(name)}/users?briefRepresentation=true"
        for member in await _paged(get, path, _MEMBERS_PAGE):
            by_client = links.client_roles.setdefault(member["id"], {})
            by_client.setdefault(client_id, []).append(name)

    async def group(group_id: str, path: str) -> None:
        url = f"{base}/groups/{group_id}/members?briefRepresentation=true"
        for member in await _paged(get, url, _MEMBERS_PAGE):
            links.groups.setdefault(member["id"], []).append(path)

    await asyncio.gather(
        *(realm_role(r["name"]) for r in roles.get("realm", []) if wanted(("realm", r["name"]))),
        *(
            client_role(cid, client_ids[cid], r["name"])
            for cid, client_roles in (roles.get("client") or {}).items()
            if client_ids.get(cid)
            for r in client_roles
            if wanted(("client", cid, r["name"]))
        ),
        *(
            group(g["id"], g["path"])
            for g in _all_groups(rep.get("groups", []), "")
            if wanted(("group", g["path"]))
        ),
    )
    return links


def _all_groups(groups: list[dict[str, Any]], parent: str) -> Iterator[dict[str, Any]]:
    """Every group of the export's tree, subgroups included, each with its path."""
    for g in groups:
        path = g.get("path") or f"{parent}/{g['name']}"
        yield {"id": g["id"], "path": path}
        yield from _all_groups(g.get("subGroups") or [], path)


async def _paged(
    get: Get, path: str, page: int, *, expected: int | None = None, what: str = ""
) -> list[dict[str, Any]]:
    """Every element of a paged listing, in order.

    With `expected` (how many there are), the pages are read concurrently; without, the first
    page alone tells whether there is more (most member lists fit in one).
    """

    async def one(start: int) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = await get(f"{path}&first={start}&max={page}")
        if what:
            advance(what, len(items))  # the heartbeat's details say how far the read got
        return items

    first = 0
    pages = 1 if expected is None else max(1, -(-expected // page))
    found: list[dict[str, Any]] = []
    while True:
        batch = await asyncio.gather(*(one(first + i * page) for i in range(pages)))
        for items in batch:
            found.extend(items)
        if len(batch[-1]) < page:
            return found
        # Full to the last page: a listing as long as counted (one more page tells), or a
        # long member list: read on, twice as many pages each time, up to _PAGES_AHEAD at
        # once (a page past the end costs Keycloak about as much as a full one).
        first += pages * page
        read = first // page
        pages = 1 if expected is not None else min(read, _PAGES_AHEAD)
