"""The panel's team card: shown with the title and items the environment file's
`api.panel_card` gives, absent when the file declares none.

The page is the real panel (its files served as they ship) in headless Chromium; its data is a
status document of the shape `/api/status` returns (the shipped card's content, from the example
service's code, is checked against a running stack in tests/e2e/test_panel.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from conceptor.api.routes.status import CardItem, PanelCard, PanelStatus

pytestmark = pytest.mark.e2e
PANEL = Path(__file__).parents[2] / "conceptor" / "api" / "panel"
ORIGIN = "http://panel.localhost"
INVOICES = PanelCard(
    title="Open invoices",
    empty="no invoices yet",
    items=[
        CardItem(id="inv-1", label="INV-0001 Acme", status="pending"),
        CardItem(id="inv-2", label="INV-0002 Globex", image_url=f"{ORIGIN}/missing.png"),
    ],
)


def _open(browser: Browser, card: PanelCard | None) -> Page:
    status: dict[str, Any] = PanelStatus(provision=None, queues=[], card=card).model_dump()

    def serve(route: Route) -> None:
        path = route.request.url.removeprefix(ORIGIN).split("?")[0]
        if path == "/api/status":
            route.fulfill(json=status)
        elif path.startswith("/api/") or path == "/missing.png":
            route.fulfill(status=404, body="{}", content_type="application/json")
        else:
            name = "index.html" if path == "/" else path.lstrip("/")
            types = {"html": "text/html", "js": "text/javascript", "css": "text/css"}
            body = (PANEL / name).read_bytes()
            route.fulfill(body=body, content_type=types[name.rsplit(".", 1)[1]])

    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.route(f"{ORIGIN}/**", serve)
    page.goto(f"{ORIGIN}/", wait_until="domcontentloaded")
    expect(page.locator("#updated")).not_to_have_text("never", timeout=15_000)
    return page


def test_a_declared_card_shows_its_title_and_items(browser: Browser) -> None:
    page = _open(browser, INVOICES)
    expect(page.locator("#team-card")).to_be_visible()
    expect(page.locator("#team-card-title")).to_have_text("Open invoices")
    expect(page.locator("#team-card-count")).to_have_text("2 shown")
    items = page.locator("#team-items .item")
    expect(items).to_have_count(2)
    assert items.evaluate_all("els => els.map(e => e.dataset.item)") == ["inv-1", "inv-2"]
    assert items.evaluate_all("els => els.map(e => e.innerText.replace(/\\s+/g, ' ').trim())") == [
        "no image INV-0001 Acme pending",
        "INV-0002 Globex",
    ]
    page.close()


def test_an_empty_or_failing_card_says_so(browser: Browser) -> None:
    page = _open(browser, INVOICES.model_copy(update={"items": []}))
    expect(page.locator("#team-items .empty")).to_have_text("no invoices yet")
    page.close()
    page = _open(browser, INVOICES.model_copy(update={"items": None}))
    expect(page.locator("#team-items .empty")).to_have_text("unavailable")
    expect(page.locator("#team-card-count")).to_have_text("")
    page.close()


def test_no_card_when_the_file_declares_none(browser: Browser) -> None:
    page = _open(browser, None)
    expect(page.locator("#team-card")).to_be_hidden()
    assert page.locator(".card:visible").evaluate_all("els => els.map(e => e.id)") == [
        "provision-card",
        "drift-card",
        "snapshots-card",
        "workers-card",
        "links-card",
    ]
    page.close()
