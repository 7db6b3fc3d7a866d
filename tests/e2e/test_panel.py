"""The status panel in headless Chromium, through the front-door, after provisioning."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, expect

from conceptor.workers.runtime import worker_identity
from tests.api_helpers import ApiStack
from tests.shipped import ALL_STEPS

pytestmark = pytest.mark.e2e
pytest_plugins = ["tests.api_stack"]

ARTIFACTS = Path(__file__).parents[1] / "artifacts"
SCREENSHOT = ARTIFACTS / "panel.png"
# Common laptop and desktop screens: the panel must fit each without scrolling sideways.
SCREENS = [(1280, 800), (1440, 900), (1920, 1080)]
# What overflows, measured in the page: the document against the viewport, each card's box,
# and how many lines each duration cell's text takes (one client rect per line box).
LAYOUT_JS = """() => {
  const lines = (node) => {
    const range = document.createRange();
    range.selectNodeContents(node);
    return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
  };
  return {
    viewport: window.innerWidth,
    document: document.documentElement.scrollWidth,
    cards: [...document.querySelectorAll(".card")].map((card) => {
      const box = card.getBoundingClientRect();
      return {
        id: card.id, left: box.left, right: box.right,
        content: card.scrollWidth, inner: card.clientWidth,
      };
    }),
    durations: [...document.querySelectorAll("#steps td.duration")].map((cell) => ({
      text: cell.textContent,
      lines: lines(cell),
    })),
  };
}"""


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

    # The shipped file's card (api.panel_card), under the title the file gives it.
    expect(page.locator("#team-card-title")).to_have_text("Recent media")
    expect(page.get_by_test_id("team-card")).to_be_visible()

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


@pytest.mark.parametrize(("width", "height"), SCREENS, ids=[f"{w}x{h}" for w, h in SCREENS])
def test_panel_fits_the_screen(
    api_stack: ApiStack,
    provisioned: Any,
    workers: None,
    browser: Browser,
    width: int,
    height: int,
) -> None:
    """No sideways scrolling, every card (and its content) inside the viewport, each duration
    on one line."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(f"{api_stack.front_door}/", wait_until="domcontentloaded")
    # Filled in: every step with its duration, both queues' workers, every tool link.
    expect(page.locator("#steps td.duration")).to_have_count(len(ALL_STEPS), timeout=15_000)
    for queue in ("core", "media"):
        expect(page.locator(f'.queue[data-queue="{queue}"] .poller')).not_to_have_count(0)
    expect(page.get_by_test_id("links").locator("a")).to_have_count(7)
    page.screenshot(path=str(ARTIFACTS / f"panel-{width}x{height}.png"), full_page=True)

    layout = page.evaluate(LAYOUT_JS)
    assert layout["viewport"] == width
    assert layout["document"] <= width, f"the page scrolls sideways: {layout}"
    outside = [c for c in layout["cards"] if c["left"] < 0 or c["right"] > width]
    assert outside == [], f"cards past the edge of a {width} px viewport: {outside}"
    spilling = [c for c in layout["cards"] if c["content"] > c["inner"]]
    assert spilling == [], f"cards whose content is wider than they are: {spilling}"
    assert {c["id"] for c in layout["cards"]} == {
        "provision-card",
        "drift-card",
        "workers-card",
        "links-card",
        "team-card",
        "snapshots-card",
    }
    durations = layout["durations"]
    assert all(d["text"].endswith(" s") for d in durations), durations
    assert [d for d in durations if d["lines"] != 1] == []
    page.close()


def test_panel_lists_snapshots(
    api_stack: ApiStack, provisioned: Any, workers: None, browser: Browser, admin_token: str
) -> None:
    """A snapshot saved through the API shows in the Snapshots card, with what it holds; a
    name of the longest kind stays inside the card."""
    name = "panel-" + uuid.uuid4().hex + "-" + "x" * 9  # 48 characters
    api = f"{api_stack.front_door}/api/snapshots"
    auth = {"authorization": f"Bearer {admin_token}"}
    saved = httpx.post(api, json={"name": name}, headers=auth, timeout=120)
    assert saved.status_code == 201, saved.text
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{api_stack.front_door}/", wait_until="domcontentloaded")
        row = page.locator(f'#snapshots tr[data-snapshot="{name}"]')
        expect(row).to_have_count(1, timeout=15_000)
        expect(row).to_contain_text("1 db · 2 buckets · 1 realms")
        layout = page.evaluate(LAYOUT_JS)
        assert layout["document"] <= 1280, f"the page scrolls sideways: {layout}"
        card = next(c for c in layout["cards"] if c["id"] == "snapshots-card")
        assert card["content"] <= card["inner"], f"the snapshot list spills: {card}"
        page.close()
    finally:
        httpx.delete(f"{api}/{name}", headers=auth, timeout=120)
