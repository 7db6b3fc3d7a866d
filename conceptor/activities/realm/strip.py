"""What is never compared: ids Keycloak assigns, which differ from one server to another."""

from __future__ import annotations

from typing import Any

# (`parentId`: groups are known by path, components by type and name.)
IGNORED = frozenset({"id", "containerId", "internalId", "parentId", "keycloakVersion", "notBefore"})


def strip(value: Any) -> Any:
    """Without server-assigned ids, at any depth."""
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if k not in IGNORED}
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value
