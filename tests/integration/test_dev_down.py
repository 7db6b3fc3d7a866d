"""`make down` (_dev-env/scripts/dev-down.bash): stops this checkout's prefix, nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from conceptor.platform.settings import REPO_ROOT
from tests.helpers import wait_until
from tests.integration.serve_helpers import DevEnv, data_dir, free_prefix, port_accepts, stop

pytestmark = pytest.mark.integration

DEV_DOWN = REPO_ROOT / "_dev-env" / "scripts" / "dev-down.bash"


@pytest.fixture
def two_stacks() -> Iterator[tuple[DevEnv, DevEnv]]:
    with data_dir() as one, data_dir() as other:
        yield (
            DevEnv(prefix=free_prefix(), localdev=one),
            DevEnv(prefix=free_prefix(), localdev=other),
        )


def run_down(prefix: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TILT_PORT_PREFIX": prefix, "CONCEPTOR_VENV": sys.prefix}
    return subprocess.run(
        ["bash", str(DEV_DOWN)],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_down_stops_only_this_prefix(two_stacks: tuple[DevEnv, DevEnv]) -> None:
    """Services on the current prefix stop cleanly; this checkout's other prefix keeps running."""
    mine, other = two_stacks
    mine_redis, mine_mailpit = mine.start("redis"), mine.start("mailpit")
    other_redis = other.start("redis")
    try:
        result = run_down(mine.prefix)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stderr == ""
        block = int(mine.prefix) * 100
        assert result.stdout.splitlines()[-1] == (
            f"dev-down: nothing listens on ports {block}-{block + 99} (prefix {mine.prefix})"
        )
        assert mine_redis.wait(timeout=10) == 0  # SIGTERM: a clean stop, not a kill
        assert mine_mailpit.wait(timeout=10) == 0
        assert mine.listening("redis") == mine.listening("mailpit") == []
        assert other_redis.poll() is None
        assert other.listening("redis") == [other.settings.port("redis")]
    finally:
        for proc in (mine_redis, mine_mailpit, other_redis):
            stop(proc)


def test_down_leaves_foreign_listeners_alone(two_stacks: tuple[DevEnv, DevEnv]) -> None:
    """A process outside this checkout on the prefix's ports is reported, not killed."""
    mine, _ = two_stacks
    port = mine.settings.port("db_tools")
    listen = (
        "import socket, time; s = socket.socket(); "
        f"s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(120)"
    )
    # Started by name from /tmp: neither its command line nor its cwd is inside the repo.
    foreign = subprocess.Popen(
        ["/usr/bin/env", "python3", "-c", listen], cwd="/tmp", start_new_session=True
    )
    try:
        wait_until(lambda: port_accepts("127.0.0.1", port), timeout=20)
        result = run_down(mine.prefix)
        assert result.returncode == 1
        assert result.stderr == ""
        assert (
            f"dev-down: ports of prefix {mine.prefix} still in use by processes outside "
            f"{REPO_ROOT} (left alone):"
        ) in result.stdout
        assert f"  port {port}: pid {foreign.pid} (" in result.stdout
        assert "python3 -c import socket" in result.stdout
        assert foreign.poll() is None
    finally:
        foreign.kill()
        foreign.wait()
