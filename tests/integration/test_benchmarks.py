"""Every benchmark in bench/ still runs: one quick round each, exit 0, its JSON written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conceptor.platform.settings import REPO_ROOT
from tests.helpers import wait_until
from tests.integration.serve_helpers import TEST_PORT_PREFIX, block_is_free

pytestmark = pytest.mark.integration

BENCH = REPO_ROOT / "bench"
LOGS = REPO_ROOT / "tests" / "artifacts" / "bench"
# Every script a `make bench` runs (bench/_*.py are their shared helpers): a new benchmark is
# checked here without being listed.
BENCHMARKS = sorted(p.stem for p in BENCH.glob("[!_]*.py"))


def _clean_env() -> dict[str, str]:
    """The machine's environment without the test session's stack settings: each benchmark
    runs its own stack on the port block it is given."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CENTRAL_", "TILT_", "CONCEPTOR_TEST_"))
    }


@pytest.mark.timeout(1500)
@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_runs_one_quick_round(name: str, tmp_path: Path) -> None:
    """`python bench/<name>.py --quick` exits 0 and writes its JSON. One at a time, each on the
    test group's port block, which a benchmark must leave free when it is done."""
    results = tmp_path / f"{name}.json"
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{name}.log"
    argv = [sys.executable, str(BENCH / f"{name}.py"), "--quick"]
    argv += ["--prefix", TEST_PORT_PREFIX, "--results", str(results)]
    with log.open("w") as out:
        proc = subprocess.run(
            argv,
            cwd=REPO_ROOT,
            env=_clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=1400,
            check=False,
        )
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
    assert proc.returncode == 0, f"bench/{name}.py --quick exited {proc.returncode}:\n{tail}"
    data = json.loads(results.read_text())
    # One round: --quick was honoured, and the figures came from a run that finished.
    assert data["runs"] == 1, f"bench/{name}.py --quick ran {data.get('runs')} rounds"
    wait_until(
        lambda: block_is_free(int(TEST_PORT_PREFIX)),
        timeout=30,
        message=f"bench/{name}.py left a server on port block {TEST_PORT_PREFIX}",
    )
