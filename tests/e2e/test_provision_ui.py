"""ProvisionWorkflow started from the Temporal Web UI's Start Workflow form, in headless
Chromium, while another provisioning run is open: both complete, nothing is applied twice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from conceptor.client.provisioning import start_provision
from conceptor.contracts import CORE_QUEUE, ProvisionResult
from conceptor.platform.devservices.stack import LocalStack
from conceptor.platform.temporal import connect
from tests.e2e.chromium import launch_options
from tests.integration.provision_support import (
    ARTIFACTS,
    core_workers,
    isolated_env,
    migration_names,
    spawn_core_worker,
)
from tests.shipped import ALL_STEPS

pytestmark = pytest.mark.e2e


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """The machine's Chromium (never a downloaded one), headless."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(**launch_options())
        yield browser
        await browser.close()


async def _fill_start_form(page: Page, ui_url: str) -> str:
    """Open the pre-filled form, press "Random UUID", leave the input empty; the chosen id."""
    await page.goto(
        f"{ui_url}/namespaces/default/workflows/start-workflow"
        f"?taskQueue={CORE_QUEUE}&workflowType=ProvisionWorkflow",
        wait_until="networkidle",
    )
    await expect(page.locator("#taskQueue")).to_have_value(CORE_QUEUE)
    await expect(page.locator("#workflowType")).to_have_value("ProvisionWorkflow")
    await page.get_by_role("button", name="Random UUID").click()
    workflow_id = await page.locator("#workflowId").input_value()
    assert len(workflow_id) == 36
    # The form copies the input of the type's latest run, if any: start with no payload at all.
    editor = page.locator(".cm-content").first
    if (await editor.inner_text()).strip():
        await editor.click()
        await page.keyboard.press("Control+A")
        await page.keyboard.press("Delete")
    assert (await editor.inner_text()).strip() == ""
    return workflow_id


async def test_start_provision_from_the_web_ui(
    local_stack: LocalStack, stack_env: dict[str, str], tmp_path: Path, browser: Browser
) -> None:
    """Start Workflow form → run completes in the UI; a concurrent run also completes; each
    migration, bucket and the realm were created exactly once between the two."""
    settings = local_stack.settings
    async with isolated_env(settings, tmp_path, deadline=120) as env:
        env.queue = CORE_QUEUE  # workers serve `core`; cleanup terminates what stays open there
        client = await connect(settings)
        page = await browser.new_page(viewport={"width": 1400, "height": 1000})
        with core_workers(stack_env, env, ARTIFACTS / "workers") as procs:
            procs.append(spawn_core_worker(stack_env, env, 0, ARTIFACTS / "workers"))
            ui_id = await _fill_start_form(page, settings.temporal_ui_url)
            other = await start_provision(client, workflow_id=f"provision-e2e-{uuid.uuid4()}")
            await page.get_by_test_id("start-workflow-button").click()

            started_toast = page.get_by_role("link", name="Workflow started successfully")
            await expect(started_toast).to_be_visible(timeout=30_000)
            await started_toast.click()  # the toast links to the new run's page
            await page.wait_for_url(f"**/workflows/{ui_id}/**", timeout=30_000)
            other_state = (await other.describe()).status
            ui_handle = client.get_workflow_handle(ui_id, result_type=ProvisionResult)
            results = await asyncio.gather(ui_handle.result(), other.result())
            await expect(page.get_by_text("Completed").first).to_be_visible(timeout=30_000)
            await page.screenshot(path=str(ARTIFACTS / "provision-ui.png"), full_page=True)
            started = await ui_handle.fetch_history()
        conn = await asyncpg.connect(env.settings.postgres_dsn)
        try:
            applied = await conn.fetch("SELECT filename FROM schema_migrations ORDER BY 1")
        finally:
            await conn.close()

    assert other_state is not None and other_state.name == "RUNNING"  # really concurrent
    first_event = started.events[0].workflow_execution_started_event_attributes
    assert not first_event.input.payloads  # the UI sent no input at all
    for result in results:
        assert set(result.steps) == set(ALL_STEPS)
    created = {
        step: sum(r.steps[step].counts.get("created", 0) for r in results)
        for step in ("migrate_postgres", "ensure_buckets", "import_realm")
    }
    assert created == {
        "migrate_postgres": len(migration_names()),
        "ensure_buckets": 2,
        "import_realm": 11,  # the realm, 2 roles, 2 clients, 2 client mappers, 2 groups, 2 users
    }
    assert [r["filename"] for r in applied] == migration_names()
