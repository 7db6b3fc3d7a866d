"""`conceptor dev serve postgres`: the pinned PostgreSQL 16 runs, a 15 data dir is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conceptor.platform.tools import versions
from tests.integration.serve_helpers import DevEnv, data_dir, free_prefix, stop

pytestmark = pytest.mark.integration


@pytest.fixture
def dev() -> Iterator[DevEnv]:
    """A private prefix and data dir."""
    with data_dir() as localdev:
        yield DevEnv(prefix=free_prefix(), localdev=localdev)


def _snapshot(root: Path) -> list[tuple[str, bytes | None]]:
    return sorted(
        (str(p.relative_to(root)), p.read_bytes() if p.is_file() else None) for p in root.rglob("*")
    )


def test_serve_postgres_runs_the_pinned_version(dev: DevEnv) -> None:
    """A fresh data dir gets a cluster of the pinned version, which the probe reports."""
    proc = dev.start("postgres")
    try:
        probed = dev.run("probe", "postgres")
    finally:
        assert stop(proc) == 0
    pinned = versions()["POSTGRES_VERSION"].removesuffix(".0")
    assert (probed.returncode, probed.stdout) == (0, f"postgres ready: PostgreSQL {pinned}\n")
    assert (dev.localdev / "postgres" / "data" / "PG_VERSION").read_text() == "16\n"


def test_serve_postgres_refuses_a_15_cluster_and_keeps_it(dev: DevEnv) -> None:
    """A cluster made by PostgreSQL 15 stops `serve` with exit 2 and the commands to move on."""
    cluster = dev.localdev / "postgres" / "data"
    (cluster / "base" / "5").mkdir(parents=True)
    (cluster / "PG_VERSION").write_text("15\n")
    (cluster / "base" / "5" / "16384").write_bytes(b"rows of the application")
    before = _snapshot(dev.localdev)

    refused = dev.run("serve", "postgres")

    assert refused.returncode == 2
    assert refused.stderr.startswith(
        f"error: {cluster} holds a PostgreSQL 15 cluster, and this stack runs PostgreSQL 16, "
        "which cannot open it; nothing was changed. To start with an empty database"
    )
    assert "`conceptor dev reset postgres`" in refused.stderr
    assert _snapshot(dev.localdev) == before
    assert dev.listening("postgres") == []
