"""Session fixtures: settings on a test port prefix, and the real local stack."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conceptor.platform.devservices.launcher import port_in_use
from conceptor.platform.devservices.stack import LocalStack
from conceptor.platform.settings import Settings, get_settings

# Tests use their own port block so they never collide with a running `make up` (prefix 440).
TEST_PORT_PREFIX = os.environ.get("CONCEPTOR_TEST_PORT_PREFIX", "451")
ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture(scope="session")
def stack_env() -> Iterator[dict[str, str]]:
    """Environment every test process and child sees: test prefix, throwaway .localdev."""
    reuse = os.environ.get("CONCEPTOR_TEST_REUSE_DIR")
    localdev = Path(reuse) if reuse else Path(tempfile.mkdtemp(prefix="conceptor-test-"))
    localdev.mkdir(parents=True, exist_ok=True)
    localdev.chmod(0o755)  # the postgres server runs as `postgres` and must reach its data dir
    env = {
        "TILT_PORT_PREFIX": TEST_PORT_PREFIX,
        "CENTRAL_LOCALDEV_DIR": str(localdev),
        "CENTRAL_ENVIRONMENT": "test",
        "CENTRAL_LOG_FORMAT": "json",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    get_settings.cache_clear()
    if not reuse:
        shutil.rmtree(localdev, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(stack_env: dict[str, str]) -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def local_stack(stack_env: dict[str, str], settings: Settings) -> Iterator[LocalStack]:
    """All seven services, real, started through `conceptor dev serve` in parallel.

    With CONCEPTOR_TEST_REUSE_DIR set and the services already up on the test prefix,
    the running ones are reused (fast local iteration); otherwise they are started here.
    """
    stack = LocalStack(settings, env=stack_env, log_dir=ARTIFACTS / "services")
    running = port_in_use(settings.host, settings.port("temporal"))
    if running and os.environ.get("CONCEPTOR_TEST_REUSE_DIR"):
        import asyncio

        asyncio.run(stack.wait_ready(stack.services, timeout=60))
        yield stack
        return
    try:
        stack.start(timeout=300)
        yield stack
    finally:
        stack.stop()
