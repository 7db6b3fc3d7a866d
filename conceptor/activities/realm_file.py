"""The realm file: parse it, check it, fill `${PLACEHOLDER}`s from settings (ports, secrets)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from temporalio.exceptions import ApplicationError

from conceptor.platform.settings import Settings

REALM_FILE_INVALID = "RealmFileInvalid"
_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def placeholders(settings: Settings) -> dict[str, str]:
    """Values the realm file may refer to; they depend on the port prefix or are secrets."""
    return {
        "SMTP_HOST": settings.smtp_host,
        "SMTP_PORT": str(settings.smtp_port),
        "MAIL_FROM": settings.mail_from,
        "FRONT_DOOR_URL": settings.front_door_url,
        "PANEL_URL": f"http://localhost:{settings.port('panel')}",
        "API_CLIENT_ID": settings.api_client_id,
        "API_CLIENT_SECRET": settings.api_client_secret.get_secret_value(),
    }


def _invalid(path: Path, why: str) -> ApplicationError:
    return ApplicationError(f"realm file {path} {why}", type=REALM_FILE_INVALID, non_retryable=True)


def _substitute(value: Any, values: dict[str, str], path: Path) -> Any:
    if isinstance(value, str):

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in values:
                known = ", ".join(sorted(values))
                raise _invalid(path, f"uses unknown placeholder ${{{name}}} (known: {known})")
            return values[name]

        return _PLACEHOLDER.sub(one, value)
    if isinstance(value, list):
        return [_substitute(v, values, path) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, values, path) for k, v in value.items()}
    return value


def load_realm(path: Path, settings: Settings) -> dict[str, Any]:
    """The realm representation to import; every problem is a non-retryable, located error."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _invalid(path, f"cannot be read: {exc.strerror}") from None
    try:
        realm = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _invalid(
            path, f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(realm, dict):
        raise _invalid(path, "must hold a JSON object (a realm representation)")
    if realm.get("realm") != settings.realm_name:
        found, expected = realm.get("realm"), settings.realm_name
        raise _invalid(path, f"defines realm {found!r}, but settings expect {expected!r}")
    for key in ("clients", "users", "groups"):
        if not isinstance(realm.get(key, []), list):
            raise _invalid(path, f"has {key!r} that is not a list")
    roles = realm.get("roles", {})
    if not isinstance(roles, dict) or not isinstance(roles.get("realm", []), list):
        raise _invalid(path, "has 'roles' that is not {\"realm\": [...]}")
    substituted: dict[str, Any] = _substitute(realm, placeholders(settings), path)
    return substituted
