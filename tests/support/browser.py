"""A real browser for console tests: Debian's Chromium driven by Playwright.

Playwright never downloads a browser here (the machine has no outside network);
`make test` installs Debian's `chromium` with apt and Playwright launches that binary.
We run as root without a desktop, hence no sandbox and no GPU; the rest of the flags
stop Chromium from calling home, which would only slow it down offline.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def skip_without_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: `make test` installs Debian's chromium with apt")


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, for as long as the block runs."""
    skip_without_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def browser_page(base_url: str, browser: Browser | None = None) -> AsyncIterator[Page]:
    """A fresh page (its own cookies) whose relative URLs go to `base_url`; starts a browser
    for it unless one is given."""
    async with contextlib.AsyncExitStack() as stack:
        if browser is None:
            browser = await stack.enter_async_context(chromium())
        context = await browser.new_context(
            base_url=base_url, viewport=VIEWPORT, accept_downloads=True
        )
        stack.push_async_callback(context.close)
        page = await context.new_page()
        page.set_default_timeout(15_000)
        yield page


async def shot(page: Page, name: str) -> Path:
    """Save what the page shows as test-artifacts/screenshots/NAME.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=False)
    return path
