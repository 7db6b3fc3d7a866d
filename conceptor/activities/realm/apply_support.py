"""Shaping write bodies: desired over live, attributes merged, hidden secrets left out."""

from __future__ import annotations

from typing import Any

from conceptor.activities.realm.items import MASK


def merged(have: dict[str, Any], want: dict[str, Any]) -> dict[str, Any]:
    """`want` over `have`, attributes merged key by key (a PUT replaces the whole map)."""
    out = {**have, **want}
    if isinstance(have.get("attributes"), dict) and isinstance(want.get("attributes"), dict):
        out["attributes"] = {**have["attributes"], **want["attributes"]}
    return out


def without_masked(value: dict[str, Any]) -> dict[str, Any]:
    """Without the values Keycloak hides: writing `**********` back would set it."""
    return {
        k: without_masked(v) if isinstance(v, dict) else v for k, v in value.items() if v != MASK
    }
