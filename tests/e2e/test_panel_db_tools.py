"""The panel's "Database tools" link opens Adminer on the application's tables, in Chromium."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from playwright.sync_api import Browser, expect

from conceptor.platform.settings import Settings
from tests.api_helpers import ApiStack

pytestmark = pytest.mark.e2e
pytest_plugins = ["tests.api_stack"]

SCREENSHOT = Path(__file__).parents[1] / "artifacts" / "db-tools.png"
# What the migrations create (services/central/migrations), and their ledger.
MIGRATED = {"accounts", "media_assets", "provision_runs", "schema_migrations"}


async def _public_tables(settings: Settings) -> set[str]:
    conn = await asyncpg.connect(settings.postgres_dsn)
    try:
        rows = await conn.fetch(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        )
    finally:
        await conn.close()
    return {r["table_name"] for r in rows}


def _in_thread(coro: Coroutine[Any, Any, set[str]]) -> set[str]:
    """Run a coroutine to completion off this thread (Playwright's sync API owns its loop)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def test_db_tools_link_opens_the_application_tables(
    api_stack: ApiStack, provisioned: Any, browser: Browser
) -> None:
    """Panel → "Database tools" → Adminer, logged in as the app role, lists every table."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{api_stack.front_door}/", wait_until="domcontentloaded")
    link = page.get_by_test_id("links").get_by_role("link", name="Database tools")
    url = f"http://localhost:{api_stack.settings.port('db_tools')}"
    expect(link).to_have_attribute("href", url)

    with page.context.expect_page() as opened:
        link.click()
    tools = opened.value
    errors: list[str] = []
    tools.on("pageerror", lambda exc: errors.append(str(exc)))
    tools.wait_for_load_state("domcontentloaded")

    expect(tools.locator("#tables-views")).to_have_text("Tables and views", timeout=15_000)
    listed = set(
        tools.locator("input[name='tables[]']").evaluate_all("els => els.map(e => e.value)")
    )
    assert listed >= MIGRATED
    assert listed == _in_thread(_public_tables(api_stack.settings))
    assert tools.url.startswith(f"{url}/?pgsql=")
    expect(tools.locator("input[type=password]")).to_have_count(0)
    expect(tools.get_by_role("link", name="media_assets").first).to_be_visible()

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    tools.screenshot(path=str(SCREENSHOT), full_page=True)
    assert errors == []
    page.close()
    tools.close()
