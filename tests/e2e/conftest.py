"""The e2e tests' shared browser: the machine's Chromium, one per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.e2e.chromium import launch_options


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """The machine's Chromium (never a downloaded one), headless, with a throwaway profile."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(**launch_options())
        yield browser
        browser.close()
