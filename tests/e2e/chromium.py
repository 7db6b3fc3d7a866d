"""How e2e tests launch the machine's Chromium: never a downloaded browser, never the network."""

from __future__ import annotations

from typing import Any

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling out on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch_options() -> dict[str, Any]:
    """Keyword arguments for Playwright's `chromium.launch` (sync or async API)."""
    return {"executable_path": CHROMIUM, "headless": True, "args": CHROMIUM_ARGS}
