"""The realm's declarative user profile (Keycloak 24+): which user attributes Keycloak keeps."""

from __future__ import annotations

import json
from typing import Any

PROVIDER = "org.keycloak.userprofile.UserProfileProvider"
_CONFIG = "kc.user.profile.config"
# What Keycloak's default profile declares when a realm has none of its own.
DEFAULT_DECLARED = frozenset({"username", "email", "firstName", "lastName"})
# Policies under which Keycloak keeps attributes the profile does not declare.
_KEEPING = frozenset({"ENABLED", "ADMIN_EDIT", "ADMIN_VIEW"})


def profile_of(rep: dict[str, Any]) -> dict[str, Any] | None:
    """The profile document a realm representation carries (a JSON string in a component)."""
    for component in (rep.get("components") or {}).get(PROVIDER) or []:
        raw = (component.get("config") or {}).get(_CONFIG)
        text = raw[0] if isinstance(raw, list) and raw else raw
        if isinstance(text, str) and text.strip():
            try:
                found = json.loads(text)
            except json.JSONDecodeError:
                return None  # Keycloak refuses it on import: that error names the component
            return found if isinstance(found, dict) else None
    return None


def major_version(rep: dict[str, Any]) -> int | None:
    """The major version of the Keycloak that wrote the file (`keycloakVersion`), if it says."""
    version = str(rep.get("keycloakVersion") or "")
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else None


def keeps_free_form(rep: dict[str, Any]) -> bool:
    """An export of Keycloak < 24 without the user profile switched on: Keycloak 26 imports it
    with `unmanagedAttributePolicy` ENABLED (its migration of such realms), keeping every
    attribute as before."""
    major = major_version(rep)
    enabled = str((rep.get("attributes") or {}).get("userProfileEnabled", "")).lower() == "true"
    return major is not None and major < 24 and not enabled


def undeclared_attributes(rep: dict[str, Any]) -> set[str]:
    """User attribute names in the file that Keycloak will drop (none when it keeps them all)."""
    profile = profile_of(rep)
    if profile is None and keeps_free_form(rep):
        return set()
    if profile is None:
        declared, policy = set(DEFAULT_DECLARED), None
    else:
        declared = {str(a.get("name")) for a in profile.get("attributes") or []}
        policy = profile.get("unmanagedAttributePolicy")
    if policy in _KEEPING:
        return set()
    names = {
        name
        for user in rep.get("users") or []
        if not user.get("serviceAccountClientId")
        for name in (user.get("attributes") or {})
    }
    return names - declared
