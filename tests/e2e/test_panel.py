"""The status panel in headless Chromium, through the front-door, after provisioning."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from conceptor.contracts import ALL_STEPS
from conceptor.workers.runtime import worker_identity
from tests.api_helpers import ApiStack
from tests.e2e.chromium import launch_options

pytestmark = pytest.mark.e2e
pytest_plugins = ["tests.api_stack"]

SCREENSHOT = Path(__file__).parents[1] / "artifacts" / "panel.png"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """The machine's Chromium (never a downloaded one), headless, with a throwaway profile."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(**launch_options())
        yield browser
        browser.close()


def test_panel_shows_every_step_done_and_each_queue(
    api_stack: ApiStack, provisioned: Any, workers: None, browser: Browser
) -> None:
    """After provisioning the panel shows each step `done`, both queues' workers and the tools."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{api_stack.front_door}/", wait_until="domcontentloaded")

    steps = page.locator("#steps tbody tr[data-step]")
    expect(steps).to_have_count(len(ALL_STEPS), timeout=15_000)
    assert steps.evaluate_all("rows => rows.map(r => r.dataset.step)") == list(ALL_STEPS)
    for step in ALL_STEPS:
        expect(page.locator(f'tr[data-step="{step}"] .pill')).to_have_text("done")
    expect(page.get_by_test_id("provision-state")).to_have_text("completed")
    expect(page.get_by_test_id("summary")).to_have_text("environment ready")

    for queue in ("core", "media"):
        block = page.locator(f'.queue[data-queue="{queue}"]')
        expect(block.locator(".poller", has_text=worker_identity(queue, 0))).to_have_count(1)

    links = page.get_by_test_id("links").locator("a")
    expect(links).to_have_count(7)
    names = [n.split("\n")[0] for n in links.all_inner_texts()]
    assert names == [
        "Temporal UI",
        "Tilt",
        "Mailpit",
        "MinIO console",
        "Keycloak admin",
        "Database tools",
        "API docs",
    ]
    expect(page.get_by_role("link", name="Tilt")).to_have_attribute(
        "href", "http://localhost:10350"
    )

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert errors == []
    page.close()
