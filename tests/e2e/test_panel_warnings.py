"""How the panel shows a step's warnings: one row each under the step, wrapped to the screen.

The page is the real panel (its files served as they ship) in headless Chromium; its data is a
status document of the shape `/api/status` returns, so that a step with warnings is shown
without provisioning a realm that has them (the warnings themselves are proven against a real
Keycloak in tests/integration/test_provision_realm_shapes.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Route, expect

from conceptor.api.routes.status import ProvisionSummary, StepSummary

pytestmark = pytest.mark.e2e
PANEL = Path(__file__).parents[2] / "conceptor" / "api" / "panel"
ORIGIN = "http://panel.localhost"
LONG = (
    "users[*].attributes.employee-id (500 users: agent-0000, agent-0001, agent-0002, "
    "agent-0003, agent-0004 and 495 more): the realm's user profile does not declare this "
    "attribute and Keycloak 24+ drops undeclared attributes"
)
SHORT = "attributes.userProfileEnabled: dropped by Keycloak 24+"


def _status() -> dict[str, object]:
    step = StepSummary(
        step="import_realm",
        state="completed",
        outcome="created",
        attempts=1,
        duration_seconds=2.5,
        error=None,
        warnings=[SHORT, LONG],
    )
    quiet = StepSummary(
        step="wait_for_redis",
        state="completed",
        outcome="unchanged",
        attempts=1,
        duration_seconds=0.1,
        error=None,
    )
    provision = ProvisionSummary(state="completed", steps=[quiet, step], error=None)
    return {"provision": provision.model_dump(), "queues": [], "card": None, "drift": None}


def _serve(route: Route) -> None:
    path = route.request.url.removeprefix(ORIGIN).split("?")[0]
    if path == "/api/status":
        route.fulfill(json=_status())
    elif path == "/api/links":
        route.fulfill(json={"links": []})
    elif path.startswith("/api/"):
        route.fulfill(status=404, body="{}", content_type="application/json")
    else:
        name = "index.html" if path == "/" else path.lstrip("/")
        types = {"html": "text/html", "js": "text/javascript", "css": "text/css"}
        route.fulfill(body=(PANEL / name).read_bytes(), content_type=types[name.rsplit(".", 1)[1]])


def test_panel_lists_each_warning_under_its_step(browser: Browser) -> None:
    """Two warnings of import_realm: two rows under that step, none under the quiet one, and
    the long one wraps inside the viewport at 1280 px."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.route(f"{ORIGIN}/**", _serve)
    page.goto(f"{ORIGIN}/", wait_until="domcontentloaded")
    rows = page.locator('#steps tbody tr[data-step-warning="import_realm"]')
    expect(rows).to_have_count(2, timeout=15_000)
    texts = rows.evaluate_all("rows => rows.map(r => r.textContent)")
    assert texts == [f"warning {SHORT}", f"warning {LONG}"]
    expect(page.locator('tr[data-step-warning="wait_for_redis"]')).to_have_count(0)
    widths = json.loads(
        page.evaluate("JSON.stringify([document.documentElement.scrollWidth, innerWidth])")
    )
    assert widths[0] <= widths[1], widths
    page.close()
