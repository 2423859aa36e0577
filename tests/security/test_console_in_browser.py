"""The console's Content-Security-Policy in a real browser (Debian's Chromium): pages work
under it, and it stops what it should."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.async_api import expect

from tests.support.browser import browser_page, console, linked, sign_in, skip_without_chromium
from tests.support.console import make_user
from tests.support.tenant_objects import populate


@pytest.fixture(autouse=True)
def _chromium() -> None:
    skip_without_chromium()


@pytest.fixture
def database_url(sqlite_databases) -> Iterator[str]:
    """One database: these tests are about the browser; the pages' queries run on both
    in tests/security/test_console_headers.py."""
    url = sqlite_databases.create()
    try:
        yield url
    finally:
        sqlite_databases.drop(url)


async def test_pages_work_in_a_browser_without_breaking_their_policy(db, storage, settings) -> None:
    """Chromium enforces the policy: pages draw, htmx swaps, clocks tick and the API docs
    render, and the console log reports no violation (browser_page fails on any)."""
    settings = linked(settings)
    acme = await populate(db, storage, "acme")
    await make_user(db, "ann", "admin")
    async with console(settings) as base, browser_page(base) as page:
        await page.goto(f"/imports/{acme.imported.id}")
        await sign_in(page, "ann")
        await expect(page).to_have_url(f"{base}/imports/{acme.imported.id}")
        # An htmx swap, not a page load: what the page held before is still there.
        await page.evaluate("window.unchanged = 'yes'")
        records = page.locator("#records tr.record")
        await expect(records).to_have_count(2)
        await page.get_by_label("Action").select_option("errored")
        await page.get_by_role("button", name="Show").click()
        await expect(records).to_have_count(1)
        assert await page.evaluate("window.unchanged") == "yes"

        await page.goto(f"/incidents/{acme.incident_id}")
        clock = page.locator(".countdown").first
        first = await clock.text_content()
        await expect(clock).not_to_have_text(first or "")  # console.js ticks it

        for url in ("/imports", "/feeds", f"/exports/{acme.export.id}", "/accounts",
                    "/keys", "/sessions", "/audit", "/users"):  # fmt: skip
            answer = await page.goto(url)
            assert answer is not None and answer.status == 200, url
            await expect(page.locator("h1, h2").first).to_be_visible()

        await page.goto("/api/docs")
        await expect(page.locator(".swagger-ui")).to_contain_text("/api/imports/{import_id}")


async def test_the_browser_refuses_a_script_slipped_into_a_page(db, storage, settings) -> None:
    """The check above can fail: a script added to a page does not run, and the browser
    says so."""
    settings = linked(settings)
    await make_user(db, "ann", "admin")
    violations: list[str] = []
    async with console(settings) as base, browser_page(base, csp_violations=violations) as page:
        await page.goto("/imports")
        await sign_in(page, "ann")
        await expect(page).to_have_url(f"{base}/imports")
        await page.evaluate(
            """() => {
                const s = document.createElement('script');
                s.textContent = 'window.injected = true';
                document.body.appendChild(s);
            }"""
        )
        await page.wait_for_timeout(200)
        assert await page.evaluate("window.injected === undefined")
    assert violations and "inline script" in violations[0]
