"""The realm file: parse it, check it, fill `${NAME}` placeholders by the names it uses."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from pydantic import SecretStr
from temporalio.exceptions import ApplicationError

from conceptor.platform.settings import REPO_ROOT, Settings

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


DOTENV_FILE = REPO_ROOT / ".env.development"
_ENV_PREFIX = "CENTRAL_"


def resolve_placeholder(name: str, settings: Settings) -> str | None:
    """A placeholder's value: the platform's derived values (ports, URLs, the API client),
    then a setting by its variable name (`CENTRAL_SMTP_PORT`), then the process's environment,
    then `.env.development`; None when none of them has it."""
    derived = placeholders(settings)
    if name in derived:
        return derived[name]
    field = name.removeprefix(_ENV_PREFIX).lower()
    if name.startswith(_ENV_PREFIX) and field in type(settings).model_fields:
        value = getattr(settings, field)
        return value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    if name in os.environ:
        return os.environ[name]
    if DOTENV_FILE.is_file():
        found = dotenv_values(DOTENV_FILE).get(name)
        if found is not None:
            return found
    return None


def _names(value: Any) -> Iterator[str]:
    """Every placeholder name `value` uses."""
    if isinstance(value, str):
        yield from _PLACEHOLDER.findall(value)
    elif isinstance(value, list):
        for v in value:
            yield from _names(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _names(v)


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
    substituted: dict[str, Any] = _substitute(realm, values, path)
    return substituted
