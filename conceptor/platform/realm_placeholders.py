"""`${NAME}` placeholders of realm files: the names a file uses and where their values come from."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from pydantic import SecretStr

from conceptor.platform import environment
from conceptor.platform.environment import Environment, Problem
from conceptor.platform.settings import REPO_ROOT, Settings

PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
DOTENV_FILE = REPO_ROOT / ".env.development"
_ENV_PREFIX = "CENTRAL_"


def derived(settings: Settings) -> dict[str, str]:
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


def resolve(name: str, settings: Settings, dotenv: Path | None = None) -> str | None:
    """A placeholder's value: the platform's derived values (ports, URLs, the API client),
    then a setting by its variable name (`CENTRAL_SMTP_PORT`), then the process's environment,
    then `dotenv` (default DOTENV_FILE); None when none of them has it."""
    dotenv = dotenv or DOTENV_FILE
    values = derived(settings)
    if name in values:
        return values[name]
    field = name.removeprefix(_ENV_PREFIX).lower()
    if name.startswith(_ENV_PREFIX) and field in type(settings).model_fields:
        value = getattr(settings, field)
        return value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    if name in os.environ:
        return os.environ[name]
    if dotenv.is_file():
        found = dotenv_values(dotenv).get(name)
        if found is not None:
            return found
    return None


def names(value: Any) -> Iterator[str]:
    """Every placeholder name `value` (a parsed realm file, or part of one) uses."""
    if isinstance(value, str):
        yield from PLACEHOLDER.findall(value)
    elif isinstance(value, list):
        for v in value:
            yield from names(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from names(v)


def unresolved_problems(
    env: Environment, folder: Path, settings: Settings, dotenv: Path | None = None
) -> list[Problem]:
    """One problem per placeholder of a declared realm file that nothing resolves: the import
    step would refuse the file at run time, so `env check` says so before anything starts."""
    dotenv = dotenv or DOTENV_FILE
    problems: list[Problem] = []
    for i, realm in enumerate(env.realms):
        path = (folder / realm.file).resolve()
        try:
            parsed = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # the file checks name a missing or broken file already
        for used in dict.fromkeys(names(parsed)):
            if resolve(used, settings, dotenv) is None:
                problems.append(
                    Problem(
                        f"realms[{i}].file",
                        f"realm file {realm.file} ({path}) uses ${{{used}}}, which neither "
                        f"settings, the environment nor {dotenv.name} has",
                        f"set {used} in one of them, or remove the placeholder from the file",
                    )
                )
    return problems


def check(file: Path, settings: Settings, *, imports: bool = True) -> Environment:
    """`environment.check`, then every declared realm file's placeholders resolved as the
    import step resolves them (EnvironmentFileError naming the file and the placeholder)."""
    env = environment.check(file, imports=imports)
    problems = unresolved_problems(env, file.resolve().parent, settings)
    if problems:
        raise environment.EnvironmentFileError(file, problems)
    return env
