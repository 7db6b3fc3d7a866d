"""Bad configuration fails provisioning non-retryably, naming the file, and applies nothing half."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from conceptor.activities.migration_plan import checksum
from conceptor.client.provisioning import ProvisionStatus, provision_status, start_provision
from conceptor.contracts import ProvisionResult, StepName
from conceptor.platform.devservices.stack import LocalStack
from conceptor.platform.temporal import connect
from tests.integration.provision_support import (
    ProvisionEnv,
    copy_migrations,
    in_process_worker,
    isolated_env,
    migration_names,
)

pytestmark = pytest.mark.integration
POSTGRES_STEPS: list[StepName] = ["wait_for_postgres", "migrate_postgres"]


async def run(
    env: ProvisionEnv, steps: list[StepName] | None = None
) -> tuple[ProvisionResult | ApplicationError, ProvisionStatus]:
    """Provision; the result, or the run's failure cause, plus the final status."""
    client = await connect(env.settings)
    async with in_process_worker(client, env):
        handle = await start_provision(
            client, workflow_id=f"provision-{uuid.uuid4()}", task_queue=env.queue, steps=steps
        )
        try:
            outcome: ProvisionResult | ApplicationError = await handle.result()
        except WorkflowFailureError as exc:
            assert isinstance(exc.cause, ApplicationError)
            outcome = exc.cause
        status = await provision_status(client, workflow_id=handle.id)
    return outcome, status


async def _tables(env: ProvisionEnv) -> set[str]:
    conn = await asyncpg.connect(env.settings.postgres_dsn)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return {r["tablename"] for r in rows}


async def _applied(env: ProvisionEnv) -> list[str]:
    conn = await asyncpg.connect(env.settings.postgres_dsn)
    try:
        rows = await conn.fetch("SELECT filename FROM schema_migrations ORDER BY 1")
    finally:
        await conn.close()
    return [r["filename"] for r in rows]


async def test_malformed_realm_file(local_stack: LocalStack, tmp_path: Path) -> None:
    """Malformed JSON fails import_realm at once with file, line and column; the rest completes."""
    async with isolated_env(local_stack.settings, tmp_path) as env:
        realm_file = env.settings.realm_file
        realm_file.write_text(f'{{\n  "realm": "{env.realm}"\n  "enabled": true\n}}\n')
        failure, status = await run(env)
    assert isinstance(failure, ApplicationError)
    assert failure.non_retryable
    assert failure.message == (
        f"provisioning failed: import_realm: realm file {realm_file} is not valid JSON: "
        "Expecting ',' delimiter at line 3 column 3"
    )
    steps = {s.step: s for s in status.steps}
    assert (steps["import_realm"].state, steps["import_realm"].attempts) == ("failed", 1)
    assert steps["migrate_postgres"].state == "completed"
    assert steps["ensure_buckets"].state == "completed"


async def test_rejected_realm_representation(local_stack: LocalStack, tmp_path: Path) -> None:
    """A representation Keycloak refuses with a 400 fails non-retryably, naming the first
    setting it cannot read (found by creating parts) and quoting Keycloak's answer."""
    async with isolated_env(local_stack.settings, tmp_path) as env:
        realm_file = env.settings.realm_file
        text = realm_file.read_text().replace('"sslRequired": "none"', '"sslRequired": 42', 1)
        realm_file.write_text(text.replace('"enabled": true', '"enabled": "maybe"', 1))
        failure, _ = await run(env, steps=["wait_for_keycloak", "import_realm"])
    assert isinstance(failure, ApplicationError)
    assert failure.message == (
        f"provisioning failed: import_realm: realm {env.realm}: Keycloak cannot create it with "
        'its setting \'enabled\' (HTTP 400: {"errorMessage":"unable to read contents from '
        'stream"}): correct that element in the realm file'
    )


async def test_failing_migration_applies_nothing_of_it(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    """A failing file is named with line and Postgres' message; none of its statements remain."""
    migrations = copy_migrations(tmp_path)
    (migrations / "9999_broken.sql").write_text(
        "CREATE TABLE half_applied (id int);\nINSERT INTO half_applied VALUES (1);\nSELEC 1;\n"
    )
    async with isolated_env(local_stack.settings, tmp_path, migrations_dir=migrations) as env:
        failure, status = await run(env, steps=POSTGRES_STEPS)
        tables = await _tables(env)
        applied = await _applied(env)
    assert isinstance(failure, ApplicationError)
    assert failure.message == (
        "provisioning failed: migrate_postgres: migration 9999_broken.sql failed at line 3: "
        '42601 syntax error at or near "SELEC"; it was rolled back, nothing of it is applied'
    )
    assert "half_applied" not in tables
    assert applied == migration_names()  # the good files before it stay applied, once
    steps = {s.step: s.state for s in status.steps}
    assert steps["migrate_postgres"] == "failed"


async def test_edited_applied_migration_is_refused(local_stack: LocalStack, tmp_path: Path) -> None:
    """Changing a file after it was applied fails the step, naming the file and both checksums."""
    migrations = copy_migrations(tmp_path)
    async with isolated_env(local_stack.settings, tmp_path, migrations_dir=migrations) as env:
        first, _ = await run(env, steps=POSTGRES_STEPS)
        assert isinstance(first, ProvisionResult)
        edited = migrations / migration_names()[0]
        original = edited.read_bytes()
        edited.write_bytes(original + b"-- tweak\n")
        (migrations / "9998_later.sql").write_text("CREATE TABLE later_one (id int);\n")
        failure, _ = await run(env, steps=POSTGRES_STEPS)
        tables = await _tables(env)
    assert isinstance(failure, ApplicationError)
    assert failure.message == (
        f"provisioning failed: migrate_postgres: migration {edited.name} was edited after it "
        f"was applied (recorded checksum {checksum(original)[:12]}, file now "
        f"{checksum(edited.read_bytes())[:12]}): restore the file and put the change in a new "
        "migration"
    )
    assert "later_one" not in tables  # nothing applied once an edit is detected
