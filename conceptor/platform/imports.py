"""A team's code the environment file names by import path (`module:attribute`), imported."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from conceptor.platform.environment import default_file
from conceptor.platform.settings import REPO_ROOT


def code_paths(file: Path | None = None) -> list[Path]:
    """Where a named module is looked for: the repository root, then the file's folder."""
    return [REPO_ROOT, (file or default_file()).resolve().parent]


def make_importable(file: Path | None = None) -> None:
    """Put `code_paths` first on sys.path (a team's code is not installed as a package)."""
    # The same search path `conceptor env check` imports it with: a clean clone finds
    # services/<team>/ without a `pip install` of it.
    for path in reversed(code_paths(file)):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


class TargetAttributeError(AttributeError):
    """The module imports but lacks the attribute after the colon."""


def import_target(target: str, file: Path | None = None) -> Any:
    """The object `module:attribute` names (ImportError, or TargetAttributeError)."""
    make_importable(file)
    module_name, _, attribute = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        if not hasattr(obj, part):
            msg = f"module {module_name} has no attribute {attribute!r}"
            raise TargetAttributeError(msg)
        obj = getattr(obj, part)
    return obj
