"""The unit of comparison: one realm element, normalised alike from the file and from Keycloak."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import orjson

# A role reference: ("realm", name) or ("client", clientId, name); a group: ("group", path);
# a client scope: ("scope", name).
Ref = tuple[str, ...]

# Element kinds the reconciler creates and updates, in the order they are written: what an
# element refers to is written before it (scopes before clients, clients before their roles,
# every role before any composite or grant, parent groups before subgroups).
MANAGED_KINDS: tuple[str, ...] = (
    "authentication-flow",
    "authenticator-config",
    "realm",
    "client-scope",
    "client-scope-mapper",
    "default-client-scopes",
    "client",
    "client-mapper",
    "role",
    "client-role",
    "client-authorization",
    "scope-mapping",
    "group",
    "user",
    "service-account",
    "identity-provider",
    "identity-provider-mapper",
    "required-action",
    "component",
)
# Kinds that are only compared: equal to the live state is `unchanged`, anything else is refused
# (none today: every kind of element a realm file holds is managed).
COMPARED_KINDS: tuple[str, ...] = ()
ORDER = {kind: i for i, kind in enumerate(MANAGED_KINDS + COMPARED_KINDS)}

# Kinds that may be deleted in `managed` mode, by the word CENTRAL_REALM_MANAGED uses for them.
DELETABLE: dict[str, tuple[str, ...]] = {
    "client-scopes": ("client-scope", "client-scope-mapper"),
    "clients": ("client", "client-mapper"),
    "roles": ("role", "client-role"),
    "groups": ("group",),
    "users": ("user",),
    "identity-providers": ("identity-provider", "identity-provider-mapper"),
}
MASK = "**********"  # what Keycloak shows instead of a secret: not comparable


@dataclass(frozen=True)
class Item:
    """One element: fields compared as a subset, memberships compared as sets to include."""

    kind: str
    name: str
    body: dict[str, Any]
    members: dict[str, frozenset[Ref]] = field(default_factory=dict)
    source: str = ""  # JSON path in the realm file (desired) or the export (live)
    live_id: str | None = None  # Keycloak's id (live items only)
    parent: str | None = None  # the owning client, client scope, provider or group
    extra: dict[str, Any] = field(default_factory=dict)  # written on creation only, never compared

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.name)

    @property
    def managed(self) -> bool:
        return self.kind in MANAGED_KINDS

    def state(self) -> dict[str, Any]:
        """What a digest is taken of."""
        members = {k: sorted("/".join(r) for r in v) for k, v in self.members.items()}
        body = _unordered(self.body)
        return {"kind": self.kind, "name": self.name, "body": body, "members": members}

    @cached_property
    def canonical(self) -> bytes:
        """`state()` as stable JSON, once per item: a realm's digest is taken of every item at
        every read, and the file's items are the same objects from one read to the next."""
        return stable_json(self.state())


def stable_json(value: Any) -> bytes:
    """JSON with sorted keys and no whitespace, at C speed (a realm holds tens of thousands)."""
    return orjson.dumps(value, default=str, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def _unordered(value: Any) -> Any:
    """Lists in a fixed order: the order of a file's lists means nothing to Keycloak."""
    if isinstance(value, dict):  # scalars as they are, without a call each: users hold many
        return {k: _unordered(v) if isinstance(v, dict | list) else v for k, v in value.items()}
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value):  # most lists: sorted as they are, at C speed
            return sorted(value)
        items = [_unordered(v) for v in value]
        return sorted(items, key=stable_json)
    return value


def ref_label(ref: Ref) -> str:
    """How a reference reads in a change's fields: `user`, `conceptor-api/viewer`, `/a/b`."""
    return "/".join(ref[1:]) if ref[0] != "group" else ref[1]
