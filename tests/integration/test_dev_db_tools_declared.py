"""db-tools browses every database the environment file declares, and no other."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from conceptor.platform.settings import REPO_ROOT
from tests.integration.serve_helpers import DevEnv, data_dir, free_prefix, stop

pytestmark = pytest.mark.integration

BILLING = "billing_tools"


@pytest.fixture
def dev() -> Iterator[DevEnv]:
    """PostgreSQL on a private prefix with a table in the app database and a second declared
    database `billing_tools` holding `invoices`; the environment file declaring both."""
    with data_dir() as localdev:
        env = DevEnv(prefix=free_prefix(), localdev=localdev)
        postgres = env.start("postgres")
        try:
            asyncio.run(_databases(env))
            (localdev / "billing").mkdir()
            file = localdev / "environment.yaml"
            migrations = REPO_ROOT / "services" / "central" / "migrations"
            file.write_text(
                "apiVersion: conceptor/v1\n"
                "databases:\n"
                f"  - {{name: conceptor, migrations: {migrations}}}\n"
                f"  - {{name: {BILLING}, migrations: billing}}\n"
                "queues:\n"
                "  - {name: core, declaration: conceptor.workers.declarations:CORE}\n"
            )
            yield DevEnv(env.prefix, localdev, {"CONCEPTOR_ENVIRONMENT_FILE": str(file)})
        finally:
            stop(postgres)


async def _databases(dev: DevEnv) -> None:
    s = dev.settings
    conn = await asyncpg.connect(s.postgres_dsn)
    try:
        await conn.execute("CREATE TABLE app_widgets (id int PRIMARY KEY)")
    finally:
        await conn.close()
    admin = await asyncpg.connect(
        host=s.host,
        port=s.port("postgres"),
        user="postgres",
        password=s.postgres_superuser_password.get_secret_value(),
        database="postgres",
    )
    try:
        await admin.execute(f'CREATE DATABASE "{BILLING}" OWNER "{s.postgres_user}"')
    finally:
        await admin.close()
    billing = await asyncpg.connect(s.postgres_dsn.rsplit("/", 1)[0] + f"/{BILLING}")
    try:
        await billing.execute("CREATE TABLE invoices (id int PRIMARY KEY)")
    finally:
        await billing.close()


def test_every_declared_database_is_browsable(dev: DevEnv) -> None:
    proc = dev.start("db-tools")
    port = dev.settings.port("db_tools")
    server = f"127.0.0.1:{dev.settings.port('postgres')}"
    base = f"http://127.0.0.1:{port}/?pgsql={server}&username=conceptor"
    try:
        with httpx.Client(follow_redirects=True, timeout=10) as browser:
            first = browser.get(f"http://127.0.0.1:{port}/")
            billing = browser.get(f"{base}&db={BILLING}&ns=public")
            other = browser.get(f"{base}&db=postgres&ns=public")
    finally:
        assert stop(proc) == 0
    assert (first.status_code, first.url.params["db"]) == (200, "conceptor")
    assert "table=app_widgets" in first.text
    # The database menu offers both declared databases.
    assert "<option selected>conceptor<option>billing_tools</select>" in first.text
    assert (billing.status_code, billing.url.params["db"]) == (200, BILLING)
    assert "table=invoices" in billing.text
    assert "table=app_widgets" not in billing.text
    # A database the file does not declare: back to the application's.
    assert (other.status_code, other.url.params["db"]) == (200, "conceptor")
    assert "table=app_widgets" in other.text
