"""Where a benchmark's own stack lives: a throwaway directory and the settings pointing at it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def stack_env(name: str, prefix: str, localdev: Path | None = None) -> tuple[Path, dict[str, str]]:
    """A fresh directory (`conceptor-bench-<name>-…`) and the environment of a stack on port
    block `prefix` whose data lives in it (or in `localdev`), set in this process too, so
    that code reading the process's settings sees the same."""
    tmp = Path(tempfile.mkdtemp(prefix=f"conceptor-bench-{name}-"))
    tmp.chmod(0o755)  # the postgres server runs as `postgres` and must reach its data dir
    localdev = localdev or tmp / "localdev"
    localdev.mkdir(parents=True, exist_ok=True)
    localdev.chmod(0o755)
    env = {
        "TILT_PORT_PREFIX": prefix,
        "CENTRAL_LOCALDEV_DIR": str(localdev),
        "CENTRAL_ENVIRONMENT": "test",
        "CENTRAL_LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    return tmp, env
