"""The realm file: parse it, check it, fill `${NAME}` placeholders by the names it uses."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from temporalio.exceptions import ApplicationError

from conceptor.platform import realm_placeholders
from conceptor.platform.settings import Settings

REALM_FILE_INVALID = "RealmFileInvalid"
_PLACEHOLDER = realm_placeholders.PLACEHOLDER
# Read at each load: tests point it elsewhere.
DOTENV_FILE = realm_placeholders.DOTENV_FILE
placeholders = realm_placeholders.derived


def resolve_placeholder(name: str, settings: Settings) -> str | None:
    """A placeholder's value as `conceptor env check` resolves it (realm_placeholders.resolve),
    with this module's DOTENV_FILE."""
    return realm_placeholders.resolve(name, settings, DOTENV_FILE)


_names = realm_placeholders.names


def _invalid(path: Path, why: str) -> ApplicationError:
    return ApplicationError(f"realm file {path} {why}", type=REALM_FILE_INVALID, non_retryable=True)


def _substitute(value: Any, values: dict[str, str], path: Path) -> Any:
    if isinstance(value, str):

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in values:  # every name was resolved before; this is a backstop
                raise _invalid(path, f"uses unknown placeholder ${{{name}}}")
            return values[name]

        return _PLACEHOLDER.sub(one, value)
    if isinstance(value, list):
        return [_substitute(v, values, path) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, values, path) for k, v in value.items()}
    return value


def load_realm(path: Path, settings: Settings, name: str | None = None) -> dict[str, Any]:
    """The realm representation to import (realm `name`, default the one settings name);
    every problem is a non-retryable, located error."""
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
    expected = name or settings.realm_name
    if realm.get("realm") != expected:
        found = realm.get("realm")
        who = "the environment file expects" if name else "settings expect"
        raise _invalid(path, f"defines realm {found!r}, but {who} {expected!r}")
    for key in ("clients", "users", "groups"):
        if not isinstance(realm.get(key, []), list):
            raise _invalid(path, f"has {key!r} that is not a list")
    roles = realm.get("roles", {})
    if not isinstance(roles, dict) or not isinstance(roles.get("realm", []), list):
        raise _invalid(path, "has 'roles' that is not {\"realm\": [...]}")
    values: dict[str, str] = {}
    for used in dict.fromkeys(_names(realm)):
        value = resolve_placeholder(used, settings)
        if value is None:
            raise _invalid(
                path,
                f"uses unknown placeholder ${{{used}}}: neither settings, the environment nor "
                f"{DOTENV_FILE.name} has {used}; set it in one of them, or remove it",
            )
        values[used] = value
    if not values:
        return realm  # nothing to substitute: a large realm is not walked for nothing
    substituted: dict[str, Any] = _substitute(realm, values, path)
    return substituted
