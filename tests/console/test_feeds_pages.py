"""Feed pages: the next expected window and the last file of each feed, and a feed's last
30 days as a timeline in which late, missing and rejected files stand out.

The windows are laid out and closed by the monitor's own functions, and the files are
imported by the importer's handler, so the pages read what production writes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from courier.cli import provision
from courier.common.db.engine import Database
from courier.common.db.models import Feed, Import, ReceivedFile, Tenant
from courier.common.db.models_incidents import ExpectationWindow, SlaPolicy
from courier.common.events import ImportCompleted, ImportCounts
from courier.console.timeline import local_text
from courier.monitor import expectations
from tests.support.console import api_client, make_token, make_user, sign_in
from tests.support.fixtures_data import leave_csv

ZONE = "Europe/London"


async def _expected_feed(db: Database, tenant: Tenant, name: str) -> Feed:
    spec = {
        "name": name,
        "kind": "leave_balances",
        "pattern": "leave_*.csv",
        "expect": {"cron": "0 9 * * *", "timezone": ZONE, "window_minutes": 120},
    }
    return await provision.upsert_feed(db, tenant, name, "leave_balances", "leave_*.csv", spec)


@dataclass
class History:
    feed: Feed
    late: ExpectationWindow  # satisfied by a file that came after it closed
    missing: ExpectationWindow  # closed without a file
    upcoming: ExpectationWindow  # the next window still to close
    late_file: Import
    rejected_file: Import  # the last file received


async def _received(db: Database, imp: Import, at: datetime) -> Import:
    """Move a file's arrival into the past (the importer stamps it now)."""
    async with db.transaction() as s:
        await s.execute(update(Import).where(Import.id == imp.id).values(received_at=at))
        await s.execute(
            update(ReceivedFile).where(ReceivedFile.id == imp.file_id).values(received_at=at)
        )
    async with db.session() as s:
        moved = await s.get(Import, imp.id)
    assert moved is not None
    return moved


@pytest.fixture
async def history(db: Database, tenant: Tenant, send) -> History:
    """Five days of a daily feed: a late file, then a window with none, then a rejected
    file between windows; the next window ahead."""
    feed = await _expected_feed(db, tenant, "leave-balances")
    now = datetime.now(UTC)
    await expectations.plan_windows(db, now - timedelta(days=5), timedelta(days=6))
    await expectations.close_due_windows(db, now, SlaPolicy())
    async with db.session() as s:
        windows = list(
            await s.scalars(select(ExpectationWindow).order_by(ExpectationWindow.due_at))
        )
    closed = [w for w in windows if w.closes_at <= now]
    upcoming = next(w for w in windows if w.closes_at > now)
    # A late file covers every missed window before it, so the missing one comes last.
    late, missing = closed[-2], closed[-1]
    late_file = await _received(
        db,
        await send("leave_late.csv", leave_csv("E1,annual,8,2026-11-01")),
        late.closes_at + timedelta(hours=3),
    )
    reported = ImportCompleted(
        import_id=late_file.id,
        file_id=late_file.file_id,
        tenant_id=tenant.id,
        tenant=tenant.slug,
        feed_id=feed.id,
        feed=feed.name,
        name=late_file.file_name,
        status=late_file.status,
        counts=ImportCounts(),
        received_at=late_file.received_at,
    )
    assert await expectations.on_file_arrived(db, reported, now) == ["resolved:leave-balances"]
    rejected_file = await _received(
        db,
        await send("leave_<b>bad<b>.csv", b""),
        late.closes_at + timedelta(hours=6),
    )
    assert rejected_file.status == "rejected"
    return History(feed, late, missing, upcoming, late_file, rejected_file)


async def test_feed_list_shows_the_next_window_and_the_last_file(db, app, history) -> None:
    await make_user(db, "sam", "support")
    async with api_client(app) as http:
        await sign_in(http, "sam")
        html = (await http.get("/feeds")).text
    assert f'href="/feeds/{history.feed.id}"' in html
    assert f"due {local_text(history.upcoming.due_at, ZONE)}" in html
    # The last file is the rejected one, its name shown as text, never as markup.
    assert "leave_&lt;b&gt;bad&lt;b&gt;.csv" in html and "<b>bad<b>" not in html
    assert f'href="/imports/{history.rejected_file.id}"' in html
    assert local_text(history.rejected_file.received_at, ZONE) in html


async def test_feed_api_gives_the_same_next_window_and_last_file(db, app, history) -> None:
    token = await make_token(db, "support")
    async with api_client(app, token) as http:
        (feed,) = (await http.get("/api/feeds")).json()
    assert feed["name"] == "leave-balances" and feed["timezone"] == ZONE
    assert feed["next_window"]["id"] == str(history.upcoming.id)
    assert feed["next_window"]["verdict"] == "expected"
    assert feed["last_file"]["import_id"] == str(history.rejected_file.id)
    assert (feed["last_file"]["status"], feed["last_file"]["verdict"]) == ("rejected", "rejected")


async def test_timeline_shows_late_missing_and_rejected_in_their_own_colours(
    db, app, history
) -> None:
    await make_user(db, "sam", "support")
    async with api_client(app) as http:
        await sign_in(http, "sam")
        html = (await http.get(f"/feeds/{history.feed.id}")).text
    svg = html[html.index('<svg class="timeline"') : html.index("</svg>")]
    assert "<script" not in svg
    for drawn in ('class="band late"', 'class="band missing"'):
        assert drawn in svg
    for drawn in ('class="mark late"', 'class="mark rejected"'):
        assert drawn in svg
    # Each mark says which file it is when hovered.
    assert "leave_late.csv — completed" in svg
    assert "leave_&lt;b&gt;bad&lt;b&gt;.csv — rejected" in svg
    # The tables under it name the same windows and files.
    tables = html[html.index("<h2>Windows</h2>") :]
    assert f"{local_text(history.missing.due_at, ZONE)}</td>" in tables
    assert '<span class="badge missing">missing</span>' in tables
    assert '<span class="badge late">late</span>' in tables
    assert f'href="/imports/{history.late_file.id}"' in tables


async def test_feed_detail_api_lists_windows_and_files_of_30_days(db, app, history) -> None:
    token = await make_token(db, "support")
    async with api_client(app, token) as http:
        detail = (await http.get(f"/api/feeds/{history.feed.id}")).json()
    verdicts = {w["id"]: w["verdict"] for w in detail["windows"]}
    assert verdicts[str(history.late.id)] == "late"
    assert verdicts[str(history.missing.id)] == "missing"
    assert verdicts[str(history.upcoming.id)] == "expected"
    files = {f["file_name"]: f["verdict"] for f in detail["files"]}
    assert files == {"leave_late.csv": "late", "leave_<b>bad<b>.csv": "rejected"}
    assert detail["schedule"]["cron"] == "0 9 * * *"


async def test_a_test_file_is_badged_and_never_taken_for_the_feeds_last_delivery(
    db, app, history, send
) -> None:
    tried = await send("test/leave_try.csv", leave_csv("E1,annual,8,2026-11-01"))
    assert tried.test and tried.feed_id == history.feed.id
    token = await make_token(db, "support")
    async with api_client(app, token) as http:
        (feed,) = (await http.get("/api/feeds")).json()
        detail = (await http.get(f"/api/feeds/{history.feed.id}")).json()
    # The last delivery is still the live (rejected) one.
    assert feed["last_file"]["import_id"] == str(history.rejected_file.id)
    files = {f["file_name"]: (f["verdict"], f["test"]) for f in detail["files"]}
    assert files["test/leave_try.csv"] == ("test", True)
    assert files["leave_late.csv"] == ("late", False)
    await make_user(db, "sam", "support")
    async with api_client(app) as http:
        await sign_in(http, "sam")
        html = (await http.get(f"/feeds/{history.feed.id}")).text
    assert 'test/leave_try.csv</a> <span class="badge test"' in html


async def test_a_customer_sees_their_feeds_only_and_another_tenants_feed_is_404(
    db, app, tenant
) -> None:
    ours = await _expected_feed(db, tenant, "acme-leave")
    globex = await provision.ensure_tenant(db, "globex", "Globex Corp", ZONE)
    theirs = await _expected_feed(db, globex, "globex-leave")
    await make_user(db, "cara", "customer", "acme")
    token = await make_token(db, "customer", "acme")
    async with api_client(app) as http:
        await sign_in(http, "cara")
        listed = (await http.get("/feeds", params={"tenant": "globex"})).text
        assert "globex-leave" not in listed
        assert (await http.get(f"/feeds/{ours.id}")).status_code == 200
        foreign = await http.get(f"/feeds/{theirs.id}")
        missing = await http.get(f"/feeds/{uuid.uuid4()}")
        assert foreign.status_code == missing.status_code == 404
        assert "globex" not in foreign.text
    async with api_client(app, token) as api:
        assert [f["name"] for f in (await api.get("/api/feeds")).json()] == ["acme-leave"]
        assert (await api.get(f"/api/feeds/{theirs.id}")).status_code == 404
