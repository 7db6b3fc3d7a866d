"""`conceptor dev serve db-tools`: Adminer on the app database, ready only when it shows it."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from conceptor.platform.tools import versions
from tests.helpers import wait_until
from tests.integration.serve_helpers import DevEnv, data_dir, free_prefix, port_accepts, stop
from tests.unit.k8s_support import by_kind, containers, render_base

pytestmark = pytest.mark.integration

TABLE = "db_tools_widgets"


@pytest.fixture
def dev() -> Iterator[DevEnv]:
    """A private prefix and data dir, with PostgreSQL running and one table of the app role."""
    with data_dir() as localdev:
        env = DevEnv(prefix=free_prefix(), localdev=localdev)
        postgres = env.start("postgres")
        try:
            asyncio.run(_create_table(env))
            yield env
        finally:
            stop(postgres)


async def _create_table(dev: DevEnv) -> None:
    conn = await asyncpg.connect(dev.settings.postgres_dsn)
    try:
        await conn.execute(f"CREATE TABLE {TABLE} (id int PRIMARY KEY)")
    finally:
        await conn.close()


def _pod_readiness(port: int) -> int:
    """The pod's readiness command, run here against this prefix's db-tools."""
    deployment = by_kind(render_base(), "Deployment")["localdev-db-tools"]
    command = next(containers(deployment))["readinessProbe"]["exec"]["command"]
    local = [part.replace("127.0.0.1:8080", f"127.0.0.1:{port}") for part in command]
    return subprocess.run(local, capture_output=True, timeout=30, check=False).returncode


def test_db_tools_lists_the_application_tables(dev: DevEnv) -> None:
    """`/` lands, with no login form, on the app database's tables, the app's table among them."""
    proc = dev.start("db-tools")
    port = dev.settings.port("db_tools")
    try:
        with httpx.Client(follow_redirects=True, timeout=10) as browser:
            page = browser.get(f"http://127.0.0.1:{port}/")
            # What the tables page's scripts load next: JSON, with no PHP warning inside.
            sizes = browser.get(f"{page.url}&script=db").json()
        script = httpx.get(f"http://127.0.0.1:{port}/?file=functions.js&version=4.8.1", timeout=10)
        probed = dev.run("probe", "db-tools")
        pod_ready = _pod_readiness(port)
    finally:
        assert stop(proc) == 0
    assert page.status_code == 200
    assert page.url.params["db"] == "conceptor"
    assert page.url.params["ns"] == "public"
    assert f"table={TABLE}" in page.text
    assert sizes[f"Engine-{TABLE}"] == "table"
    # Adminer's own scripts are served, not redirected to the tables page like other URLs.
    assert (script.status_code, script.headers["content-type"]) == (
        200,
        "text/javascript; charset=utf-8",
    )
    assert "function\nmixin(" in script.text
    assert "conceptor-dev-postgres" not in page.text
    assert (probed.returncode, probed.stdout) == (
        0,
        f"db-tools ready: adminer {versions()['ADMINER_VERSION']} on database conceptor\n",
    )
    assert pod_ready == 0
    assert "conceptor-dev-postgres" not in dev.log_of("db-tools")
    assert dev.listening("db-tools") == []


def test_db_tools_is_not_ready_when_it_cannot_log_in(dev: DevEnv) -> None:
    """With a wrong password Adminer answers, but without the tables: not ready, either mode."""
    wrong = DevEnv(dev.prefix, dev.localdev, extra={"CENTRAL_POSTGRES_PASSWORD": "not-it-4711"})
    proc = wrong.spawn("db-tools")
    port = dev.settings.port("db_tools")
    try:
        wait_until(
            lambda: port_accepts("127.0.0.1", port),
            timeout=30,
            message="db-tools never listened",
        )
        probed = wrong.run("probe", "db-tools")
        pod_ready = _pod_readiness(port)
    finally:
        stop(proc)
    assert probed.returncode == 1
    assert probed.stderr == (
        "error: db-tools not ready: db-tools answered 403 without the tables of conceptor\n"
    )
    assert pod_ready == 1
    assert "not-it-4711" not in wrong.log_of("db-tools")


def test_failed_logins_lock_nobody_out(dev: DevEnv) -> None:
    """Forty failed connections (a start-up before PostgreSQL is up) leave db-tools usable."""
    wrong = DevEnv(dev.prefix, dev.localdev, extra={"CENTRAL_POSTGRES_PASSWORD": "not-it-4711"})
    port = dev.settings.port("db_tools")
    proc = wrong.spawn("db-tools")
    try:
        wait_until(lambda: port_accepts("127.0.0.1", port), timeout=30, message="no db-tools")
        for _ in range(40):
            assert httpx.get(f"http://127.0.0.1:{port}/", follow_redirects=True).status_code == 403
    finally:
        stop(proc)
    proc = dev.start("db-tools")
    try:
        probed = dev.run("probe", "db-tools")
    finally:
        stop(proc)
    assert (probed.returncode, probed.stderr) == (0, "")
    # Adminer's own record of failures stays in this instance's data dir, not the shared /tmp.
    assert (dev.localdev / "db-tools" / "tmp" / "adminer.invalid").exists()
