"""A real browser for console tests: Debian's Chromium driven by Playwright.

Playwright never downloads a browser here (the machine has no outside network);
`make test` installs Debian's `chromium` with apt and Playwright launches that binary.
We run as root without a desktop, hence no sandbox and no GPU; the rest of the flags
stop Chromium from calling home, which would only slow it down offline.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from courier.common.settings import Settings
from tests.support.console import PASSWORD
from tests.support.services import eventually, running

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
# What Chromium's console says when a page's Content-Security-Policy stopped something.
CSP = "Content Security Policy"


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
async def browser_page(
    base_url: str, browser: Browser | None = None, *, csp_violations: list[str] | None = None
) -> AsyncIterator[Page]:
    """A fresh page (its own cookies) whose relative URLs go to `base_url`; starts a browser
    for it unless one is given.

    Every console message reporting a Content-Security-Policy violation goes into
    `csp_violations`; without that list, the block fails if there was any: a page that
    works only because the browser ignored its policy does not work.
    """
    async with contextlib.AsyncExitStack() as stack:
        if browser is None:
            browser = await stack.enter_async_context(chromium())
        context = await browser.new_context(
            base_url=base_url, viewport=VIEWPORT, accept_downloads=True
        )
        stack.push_async_callback(context.close)
        page = await context.new_page()
        page.set_default_timeout(15_000)
        violations = [] if csp_violations is None else csp_violations
        page.on("console", lambda m: violations.append(m.text) if CSP in m.text else None)
        yield page
        if csp_violations is None:
            assert violations == [], f"the page broke its Content-Security-Policy: {violations}"


async def shot(page: Page, name: str) -> Path:
    """Save what the page shows as test-artifacts/screenshots/NAME.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=False)
    return path


def linked(settings: Settings) -> Settings:
    """Settings whose links (e-mails, redirects) point at the console a test runs."""
    return settings.model_copy(
        update={"console_base_url": f"http://127.0.0.1:{settings.console_port}"}
    )


@contextlib.asynccontextmanager
async def console(settings: Settings) -> AsyncIterator[str]:
    """The console process serving HTTP on its port; yields its base URL."""
    base = settings.console_base_url
    async with running("console", settings), httpx.AsyncClient(base_url=base) as http:

        async def listening() -> bool:
            try:
                return (await http.get("/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(listening)
        yield base


async def sign_in(page: Page, username: str, password: str = PASSWORD) -> None:
    """Fill the sign-in page the console sent the browser to."""
    await expect(page).to_have_url(re.compile(r"/signin\?next="))
    await page.get_by_label("User name").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
