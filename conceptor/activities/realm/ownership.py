"""What provisioning created, recorded in the realm, so `managed` mode deletes nothing else."""

from __future__ import annotations

import json
from typing import Any

from conceptor.activities.realm.items import DELETABLE, Item

PREFIX = "conceptor.owned."
OWNABLE = tuple(kind for kinds in DELETABLE.values() for kind in kinds)


def owned_of(realm_body: dict[str, Any] | None) -> dict[str, set[str]]:
    """Names per kind that provisioning created, from the realm's attributes."""
    attributes = (realm_body or {}).get("attributes") or {}
    out: dict[str, set[str]] = {}
    for kind in OWNABLE:
        raw = attributes.get(PREFIX + kind)
        try:
            names = json.loads(raw) if isinstance(raw, str) else []
        except ValueError:
            names = []  # edited by hand into something else: own nothing rather than guess
        if names := {n for n in names if isinstance(n, str)}:
            out[kind] = names
    return out


def deletable_kinds(words: set[str]) -> frozenset[str]:
    """The kinds CENTRAL_REALM_MANAGED opts into deleting (unknown words are refused earlier)."""
    return frozenset(kind for word in words for kind in DELETABLE.get(word, ()))


def attributes_for(owned: dict[str, set[str]]) -> dict[str, str]:
    return {PREFIX + kind: json.dumps(sorted(names)) for kind, names in sorted(owned.items())}


def after(
    owned: dict[str, set[str]], created: list[Item], deleted: list[tuple[str, str]]
) -> dict[str, set[str]]:
    """Ownership once `created` exist and `deleted` are gone."""
    out = {kind: set(names) for kind, names in owned.items()}
    for item in created:
        if item.kind in OWNABLE:
            out.setdefault(item.kind, set()).add(item.name)
    for kind, name in deleted:
        out.get(kind, set()).discard(name)
    return out
