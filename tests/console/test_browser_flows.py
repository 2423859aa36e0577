"""The console in a real browser (Debian's Chromium through Playwright) against the console
process serving HTTP, as support engineers and customers use it. Each flow leaves a
screenshot in test-artifacts/screenshots/ (docs/console/ shows copies of them)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import Page, expect
from sqlalchemy import select

from courier.cli import provision
from courier.common.db.models import ImportRecord, LeaveBalance
from courier.common.db.models_incidents import SlaPolicy
from courier.monitor import expectations
from tests.support.browser import (
    browser_page,
    console,
    linked,
    shot,
    sign_in,
    skip_without_chromium,
)
from tests.support.console import make_user
from tests.support.paging import Mailbox, body
from tests.support.paging_fixtures import mailbox, paging, rota, sns, sns_server  # noqa: F401
from tests.support.services import at_once, eventually, running
from tests.support.tenant_objects import open_incident, populate


@pytest.fixture(autouse=True)
def _chromium() -> None:
    skip_without_chromium()


@pytest.fixture
def database_url(sqlite_databases) -> Iterator[str]:
    """One database here (the embedded one, which every machine has): these flows test
    what people see, and the queries under each page run on both in the page tests."""
    url = sqlite_databases.create()
    try:
        yield url
    finally:
        sqlite_databases.drop(url)


async def reload_until(page: Page, selector: str, text: str, within: float = 20) -> None:
    """Reload until `selector` reads `text` (another service is doing the work)."""
    deadline = asyncio.get_running_loop().time() + within
    while text not in (await page.locator(selector).first.text_content() or ""):
        assert asyncio.get_running_loop().time() < deadline, f"{selector} never read {text!r}"
        await asyncio.sleep(0.3)
        await page.reload()


async def test_a_person_signs_in_and_sees_the_imports_list(db, storage, settings) -> None:
    settings = linked(settings)
    acme = await populate(db, storage, "acme")
    await make_user(db, "ann", "support")
    async with console(settings) as base, browser_page(base) as page:
        await page.goto("/imports")
        await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        await shot(page, "signin")
        await sign_in(page, "ann")
        await expect(page).to_have_url(f"{base}/imports")
        row = page.locator("#import-rows tr", has_text=acme.imported.file_name)
        await expect(row).to_be_visible()
        await expect(row).to_contain_text("completed with errors")
        await shot(page, "imports")


async def test_an_import_opens_and_its_errored_rows_show_their_reason(
    db, storage, settings
) -> None:
    settings = linked(settings)
    acme = await populate(db, storage, "acme")
    async with db.session() as s:
        [reason] = await s.scalars(
            select(ImportRecord.error).where(
                ImportRecord.import_id == acme.imported.id, ImportRecord.action == "errored"
            )
        )
    await make_user(db, "ann", "support")
    async with console(settings) as base, browser_page(base) as page:
        await page.goto("/imports")
        await sign_in(page, "ann")
        await page.get_by_role("link", name=acme.imported.file_name).click()
        await expect(page).to_have_url(f"{base}/imports/{acme.imported.id}")
        records = page.locator("#records tr.record")
        await expect(records).to_have_count(2)
        await page.get_by_label("Action").select_option("errored")
        await page.get_by_role("button", name="Show").click()
        await expect(page).to_have_url(re.compile(r"action=errored"))
        await expect(records).to_have_count(1)
        await expect(records.first).to_contain_text(reason or "")
        await expect(page.locator("#records tr.record.created")).to_have_count(0)
        await shot(page, "import-detail")


async def test_the_original_file_downloads_byte_for_byte(db, storage, settings) -> None:
    settings = linked(settings)
    acme = await populate(db, storage, "acme")
    await make_user(db, "cara", "customer", "acme")
    async with console(settings) as base, browser_page(base) as page:
        await page.goto(f"/imports/{acme.imported.id}")
        await sign_in(page, "cara")
        async with page.expect_download() as pending:
            await page.get_by_role("link", name="Original file").click()
        download = await pending.value
        assert download.suggested_filename == acme.imported.file_name
        with open(await download.path(), "rb") as saved:
            assert saved.read() == acme.original
        await shot(page, "import-download")


async def test_a_held_import_is_approved_and_applied(db, storage, settings, bus) -> None:
    settings = linked(settings)
    acme = await populate(db, storage, "acme")
    await make_user(db, "ann", "support")
    async with (
        running("importer", settings),
        console(settings) as base,
        browser_page(base) as page,
    ):
        await page.goto(f"/imports/{acme.held.id}")
        await sign_in(page, "ann")
        await expect(page.locator("h1 .badge")).to_have_text("awaiting approval")
        await page.get_by_role("button", name="Approve and apply").click()
        await expect(page.locator(".notice").first).to_be_visible()
        await reload_until(page, "h1 .badge", "completed")
        await expect(page.locator("dl.facts").first).to_contain_text("by ann")
        await expect(page.locator("#records tr.record.created")).to_have_count(1)
        await shot(page, "import-approved")
    async with db.session() as s:
        applied = await s.scalar(select(LeaveBalance).where(LeaveBalance.employee_id == "E7"))
    assert applied is not None and applied.tenant_id == acme.tenant.id


async def test_an_incident_opens_from_its_email_and_is_acknowledged_and_resolved(
    db,
    storage,
    paging,  # noqa: F811
    rota,  # noqa: F811
    mailbox: Mailbox,  # noqa: F811
) -> None:
    settings = linked(paging)
    tenant = await provision.ensure_tenant(db, "acme", "Acme Ltd", "Europe/London")
    await make_user(db, "ann", "support")
    incident_id = await open_incident(db, tenant, "payroll_20261201.txt")
    async with (
        running("notifier", settings),
        running("monitor", settings),
        console(settings) as base,
        browser_page(base) as page,
    ):
        mails = await eventually(lambda: at_once(mailbox.to("payroll-it@acme.example")))
        found = re.search(rf"{re.escape(base)}/incidents/[0-9a-f-]{{36}}", body(mails[0]))
        assert found, body(mails[0])
        assert found.group(0) == f"{base}/incidents/{incident_id}"

        await page.goto(found.group(0))
        await sign_in(page, "ann")
        await expect(page).to_have_url(found.group(0))
        state = "h1 .badge"
        await expect(page.locator(state)).to_have_text("open")
        await page.get_by_role("button", name="Acknowledge").click()
        await reload_until(page, state, "acknowledged")
        await page.get_by_label("Closing note (optional)").fill("re-sent with the right name")
        await page.get_by_role("button", name="Resolve").click()
        await reload_until(page, state, "resolved")
        await expect(page.locator("body")).to_contain_text("re-sent with the right name")
        await shot(page, "incident")


async def test_the_feed_timeline_is_drawn(db, storage, settings) -> None:
    settings = linked(settings)
    acme = await populate(db, storage, "acme")
    # Ten days of windows laid out and closed by the monitor's functions: missed ones.
    now = datetime.now(UTC)
    await expectations.plan_windows(db, now - timedelta(days=10), timedelta(days=11))
    await expectations.close_due_windows(db, now, SlaPolicy())
    await make_user(db, "ann", "support")
    async with console(settings) as base, browser_page(base) as page:
        await page.goto("/feeds")
        await sign_in(page, "ann")
        await page.get_by_role("link", name=acme.feed.name).first.click()
        await expect(page).to_have_url(f"{base}/feeds/{acme.feed.id}")
        picture = page.locator("figure.timeline svg")
        await expect(picture).to_be_visible()
        box = await picture.bounding_box()
        assert box and box["width"] > 300 and box["height"] > 40
        await shot(page, "timeline")


async def test_a_customer_sees_only_their_own_tenant(db, storage, settings) -> None:
    settings = linked(settings)
    acme = await populate(db, storage, "acme")
    globex = await populate(db, storage, "globex")
    await make_user(db, "cara", "customer", "acme")
    async with console(settings) as base, browser_page(base) as page:
        await page.goto("/imports")
        await sign_in(page, "cara")
        rows = page.locator("#import-rows")
        await expect(rows).to_contain_text(acme.imported.file_name)
        await expect(rows).not_to_contain_text(globex.imported.file_name)
        await expect(page.locator("main, body").first).not_to_contain_text("globex")
        await shot(page, "customer-imports")

        answer = await page.goto(f"/imports/{globex.imported.id}")
        assert answer is not None and answer.status == 404
        await expect(page.locator("body")).not_to_contain_text(globex.imported.file_name)
        await shot(page, "customer-not-found")


async def test_the_pages_of_the_navigation_open(db, storage, settings) -> None:
    """Each page in the menu opens for an admin (and is pictured for the docs)."""
    settings = linked(settings)
    acme = await populate(db, storage, "acme")
    await make_user(db, "ann", "admin")
    await make_user(db, "cara", "customer", "acme")
    pages = {
        "exports": f"/exports/{acme.export.id}",
        "feeds": "/feeds",
        "incidents": "/incidents",
        "accounts": "/accounts",
        "sessions": "/sessions",
        "audit": "/audit",
        "users": "/users",
    }
    async with console(settings) as base, browser_page(base) as page:
        await page.goto("/")
        await sign_in(page, "ann")
        for name, url in pages.items():
            answer = await page.goto(url)
            assert answer is not None and answer.status == 200, url
            await expect(page.locator("h1, h2").first).to_be_visible()
            await shot(page, name)


async def test_the_api_docs_render_from_the_consoles_own_assets(db, settings) -> None:
    settings = linked(settings)
    await make_user(db, "ann", "admin")
    async with console(settings) as base, browser_page(base) as page:
        await page.goto("/")
        await sign_in(page, "ann")
        await page.get_by_role("link", name="API").click()
        await expect(page).to_have_url(f"{base}/api/docs")
        # Swagger UI is drawn offline (no CDN): the operations of the API are listed.
        await expect(page.locator(".swagger-ui")).to_contain_text("/api/imports/{import_id}")
        await shot(page, "api-docs")
