"""Where the pinned dev tools live: versions from _dev-env/versions.env, binaries in the cache."""

from __future__ import annotations

import shutil
import sys
from functools import lru_cache
from pathlib import Path

from conceptor.platform.settings import REPO_ROOT, get_settings

VERSIONS_FILE = REPO_ROOT / "_dev-env" / "versions.env"
SETUP_HINT = "run _dev-env/scripts/dev-setup.bash"


class ToolMissingError(RuntimeError):
    """A tool the platform needs is not installed."""


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """The pinned versions, KEY=VALUE lines of versions.env."""
    pinned: dict[str, str] = {}
    for line in VERSIONS_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            pinned[key.strip()] = value.strip()
    return pinned


def cached_tool(name: str, version_key: str, relative: str) -> Path:
    """A tool built or unpacked by dev-setup into <tools_dir>/<name>-<version>/<relative>."""
    version = versions()[version_key]
    path = get_settings().tools_dir / f"{name}-{version}" / relative
    if not path.exists():
        msg = f"{name} {version} is not installed (expected {path}): {SETUP_HINT}"
        raise ToolMissingError(msg)
    return path


def venv_tool(name: str) -> Path:
    """A binary shipped by a Python package into this interpreter's bin/ (temporal, caddy)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return candidate
    found = shutil.which(name)
    if found is None:
        msg = f"{name} is not installed in {Path(sys.executable).parent}: {SETUP_HINT}"
        raise ToolMissingError(msg)
    return Path(found)


def postgres_major() -> int:
    """The PostgreSQL major version every infra mode runs (POSTGRES_MAJOR in versions.env)."""
    return int(versions()["POSTGRES_MAJOR"])


def postgres_home() -> Path:
    """The pinned PostgreSQL installation (bin/, lib/, share/) that dev-setup unpacked."""
    return cached_tool("postgres", "POSTGRES_VERSION", "bin/postgres").parent.parent


def postgres_bin(program: str) -> Path:
    """A PostgreSQL server program of the pinned installation (initdb, pg_ctl, postgres)."""
    return cached_tool("postgres", "POSTGRES_VERSION", f"bin/{program}")


def adminer_php() -> Path:
    """Adminer, the single PHP file of Debian's `adminer` package (run by db-tools)."""
    path = Path("/usr/share/adminer/adminer.php")
    if not path.exists():
        msg = f"Adminer is not installed (expected {path}): {SETUP_HINT}"
        raise ToolMissingError(msg)
    return path


def system_tool(name: str) -> Path:
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None
    )
    if found is None:
        msg = f"{name} is not installed: {SETUP_HINT}"
        raise ToolMissingError(msg)
    return Path(found)
