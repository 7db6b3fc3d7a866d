"""`conceptor provision --wait` against a real core worker: live table, exit code, attach."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conceptor.client.provisioning import provision_status
from conceptor.contracts import CORE_QUEUE, PROVISION_WORKFLOW_ID
from conceptor.platform.devservices.stack import LocalStack
from conceptor.platform.temporal import connect
from tests.integration.provision_support import (
    ARTIFACTS,
    ProvisionEnv,
    core_workers,
    isolated_env,
    spawn_core_worker,
)
from tests.shipped import ALL_STEPS

pytestmark = pytest.mark.integration


async def _cli(stack_env: dict[str, str], env: ProvisionEnv, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "conceptor",
        *args,
        env={**os.environ, **stack_env, **env.environ(), "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=180)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_provision_cli_succeeds_then_fails_on_a_broken_realm(
    local_stack: LocalStack, stack_env: dict[str, str], tmp_path: Path
) -> None:
    """Exit 0 with every step in the table; with a malformed realm file exit 1 naming the file."""
    async with isolated_env(local_stack.settings, tmp_path, deadline=120) as env:
        env.queue = CORE_QUEUE
        with core_workers(stack_env, env, ARTIFACTS / "workers") as procs:
            procs.append(spawn_core_worker(stack_env, env, 0, ARTIFACTS / "workers"))
            code, out = await _cli(stack_env, env, "provision", "--wait")
            assert code == 0, out
            assert "provisioning completed" in out
            # One row per step, the step column as wide as the longest name.
            for step in ALL_STEPS:
                assert re.search(rf"│ {re.escape(step)} +│ completed │", out), step

            env.settings.realm_file.write_text("{\n")
            code, out = await _cli(stack_env, env, "provision", "--wait")
            status = await provision_status(await connect(env.settings))
    assert code == 1, out
    assert re.search(r"│ import_realm +│ failed", out), out
    assert status.workflow_id == PROVISION_WORKFLOW_ID
    assert status.state == "failed"
    assert status.error == (
        f"provisioning failed: import_realm: realm file {env.settings.realm_file} is not valid "
        "JSON: Expecting property name enclosed in double quotes at line 2 column 1"
    )
    assert " ".join(status.error.split()) in " ".join(out.replace("│", " ").split())
