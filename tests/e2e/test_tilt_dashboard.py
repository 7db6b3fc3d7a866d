"""Tilt's web dashboard in Chromium: the repo's Tiltfile turns analytics off, so no banner."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from conceptor.platform.settings import Settings
from tests.e2e.tilt_helpers import (
    ARTIFACTS,
    free_port,
    listening_ports,
    start_tilt_up,
    stop_tilt_up,
    tilt_prefix,
)
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e

PREFIX = tilt_prefix("458")  # not the default 440, not another test's block
# Tilt's banner: "Welcome to Tilt! We collect anonymized usage data…" with Nope / I'm in.
BANNER = 'aside[aria-label="Tilt analytics options"]'
# Each of these turns Tilt's analytics off on its own (CI=true in CI): the test takes them away,
# so that only the Tiltfile decides.
ANALYTICS_ENV = ("TILT_DISABLE_ANALYTICS", "DO_NOT_TRACK", "CI")


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    """No analytics switch in the environment, and a Tilt settings directory of its own: no
    opt-in or opt-out this machine's user may have recorded."""
    env = {k: v for k, v in os.environ.items() if k not in ANALYTICS_ENV}
    env["TILT_DEV_DIR"] = str(tmp / "tilt-dev")
    env.update(extra)
    return env


def _view(port: int) -> dict[str, Any] | None:
    """Tilt's own view of the session and its resources (what the dashboard renders)."""
    try:
        resp = httpx.get(f"http://localhost:{port}/api/view", timeout=5)
    except httpx.HTTPError:
        return None
    return resp.json() if resp.status_code == 200 else None


def _green(port: int, resource: str) -> bool:
    view = _view(port) or {}
    for item in view.get("uiResources", []):
        if item["metadata"]["name"] == resource:
            return bool(item.get("status", {}).get("updateStatus") == "ok")
    return False


def _dashboard(browser: Browser, port: int, resource: str, shot: str) -> Page:
    """The dashboard's resource list, once `resource` shows on it."""
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(f"http://localhost:{port}/r/(all)/overview", wait_until="domcontentloaded")
    expect(page.get_by_text(resource, exact=True).first).to_be_visible(timeout=30_000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / shot))
    return page


@pytest.mark.timeout(300)
def test_dashboard_asks_about_analytics_when_no_tiltfile_decides(browser: Browser) -> None:
    """The control: the same Tilt and browser, a Tiltfile without analytics_settings: once a
    resource has been green, the dashboard shows the banner. So its absence below means
    something."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="conceptor-tilt-ui-") as tmp:
        root = Path(tmp)
        (root / "Tiltfile").write_text("local_resource('hello', cmd='true')\n")
        env = _env(root)
        up = start_tilt_up(env, port, root / "tilt.log", "-f", str(root / "Tiltfile"))
        try:
            wait_until(lambda: _green(port, "hello"), timeout=120, interval=0.5)
            page = _dashboard(browser, port, "hello", "tilt-dashboard-default.png")
            banner = page.locator(BANNER)
            expect(banner).to_be_visible(timeout=30_000)
            expect(banner).to_contain_text("We collect anonymized usage data")
            expect(banner.get_by_role("button", name="Nope")).to_be_visible()
            assert (_view(port) or {})["uiSession"]["status"]["needsAnalyticsNudge"] is True
            page.close()
        finally:
            stop_tilt_up(up, timeout=60)


@pytest.mark.timeout(300)
def test_dashboard_of_this_tiltfile_never_shows_the_analytics_banner(browser: Browser) -> None:
    """`tilt up` of the repo's Tiltfile (only `dev-links`, a command that turns green at once):
    once it is green, the dashboard lists it and shows no "We collect anonymized usage data"
    banner."""
    settings = Settings(port_prefix=PREFIX)
    assert listening_ports(settings) == [], "the test's port block must start empty"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="conceptor-tilt-ui-") as tmp:
        root = Path(tmp)
        localdev = root / "localdev"
        env = _env(
            root, TILT_INFRA="local", TILT_PORT_PREFIX=PREFIX, CENTRAL_LOCALDEV_DIR=str(localdev)
        )
        up = start_tilt_up(env, port, root / "tilt.log", "dev-links")
        try:
            wait_until(
                lambda: _green(port, "dev-links"),
                timeout=120,
                interval=0.5,
                message=f"dev-links never green; log: {(root / 'tilt.log').read_text()[-2000:]}",
            )
            view = _view(port)
            assert view is not None
            assert view["uiSession"]["status"].get("needsAnalyticsNudge", False) is False
            page = _dashboard(browser, port, "dev-links", "tilt-dashboard.png")
            # The banner would be there by now (the control shows it on the first green).
            expect(page.locator(BANNER)).to_have_count(0)
            expect(page.get_by_text("We collect anonymized usage data")).to_have_count(0)
            page.close()
        finally:
            stop_tilt_up(up, timeout=60)
    wait_until(lambda: listening_ports(settings) == [], timeout=30)
