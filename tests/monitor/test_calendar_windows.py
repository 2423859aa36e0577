"""Expected-file windows on the customer's clock: the tenant's time zone by default, its
business calendar (public holidays, closures), and the reminder before a window closes,
sent by the running monitor and notifier across the clock changes of Europe/London; SLA
deadlines paged on the tenant's clock."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from courier.cli import provision
from courier.cli.tenant_calendar import set_calendar
from courier.common.bus import Bus
from courier.common.clock import ManualClock
from courier.common.db.engine import Database
from courier.common.db.models import Feed, Tenant
from courier.common.db.models_incidents import ExpectationWindow, Notice, SlaPolicy
from courier.common.events import FileRejected
from courier.common.settings import Settings
from courier.monitor import expectations, signals, sla
from courier.notifier.rota import Rota
from courier.notifier.routing import page_text
from tests.support.paging import Mailbox, body, imported
from tests.support.paging_fixtures import CONTACT
from tests.support.services import at_once, eventually, running

LONDON = "Europe/London"
# How long the running monitor gets to act on a moment before a test says it did not.
SETTLE_SECONDS = 1.0


async def _feed(db: Database, tenant: Tenant, **expect: Any) -> Feed:
    spec = {
        "name": "leave-balances",
        "kind": "leave_balances",
        "pattern": "leave_{yyyyMMdd}.csv",
        "expect": {"cron": "0 6 * * *", "window_minutes": 60, "warn_before_minutes": 30} | expect,
        "contacts": [{"name": "Payroll IT", "email": CONTACT}],
    }
    return await provision.upsert_feed(
        db, tenant, spec["name"], spec["kind"], spec["pattern"], spec
    )


async def _due_utc(db: Database) -> list[str]:
    async with db.session() as s:
        windows = await s.scalars(select(ExpectationWindow).order_by(ExpectationWindow.due_at))
        return [f"{w.due_at.astimezone(UTC):%a %d %H:%M}" for w in windows]


def _warnings(mailbox: Mailbox) -> list[str]:
    return [body(m) for m in mailbox.to(CONTACT) if "not received yet" in m["Subject"]]


async def test_a_feed_without_a_time_zone_is_laid_out_in_the_tenants(
    db: Database, tenant: Tenant
) -> None:
    await _feed(db, tenant)  # no `timezone`: the tenant's Europe/London
    await expectations.plan_windows(db, datetime(2027, 6, 1, 0, tzinfo=UTC), timedelta(hours=36))
    assert await _due_utc(db) == ["Tue 01 05:00", "Wed 02 05:00"]  # 06:00 BST


async def test_windows_on_business_days_skip_the_tenants_holidays_closures_and_weekends(
    db: Database, tenant: Tenant
) -> None:
    await set_calendar(db, tenant.slug, "GB", "ENG", close=(date(2026, 12, 24),))
    await _feed(db, tenant, days="business")
    await expectations.plan_windows(db, datetime(2026, 12, 22, 12, tzinfo=UTC), timedelta(days=9))
    # 24 Dec closed; 25 Christmas; 26-27 weekend; 28 Boxing Day (observed).
    assert await _due_utc(db) == [
        "Wed 23 06:00",
        "Tue 29 06:00",
        "Wed 30 06:00",
        "Thu 31 06:00",
    ]


async def test_a_closure_set_after_windows_were_laid_out_takes_its_window_away_and_back(
    db: Database, tenant: Tenant
) -> None:
    await _feed(db, tenant, days="business")
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    await expectations.plan_windows(db, now, timedelta(days=3))
    assert await _due_utc(db) == ["Wed 02 06:00", "Thu 03 06:00", "Fri 04 06:00"]

    await set_calendar(db, tenant.slug, close=(date(2026, 12, 3),))
    await expectations.plan_windows(db, now + timedelta(minutes=5), timedelta(days=3))
    assert await _due_utc(db) == ["Wed 02 06:00", "Fri 04 06:00"]

    await set_calendar(db, tenant.slug, reopen=(date(2026, 12, 3),))
    await expectations.plan_windows(db, now + timedelta(minutes=10), timedelta(days=3))
    assert await _due_utc(db) == ["Wed 02 06:00", "Thu 03 06:00", "Fri 04 06:00"]


async def test_a_window_already_open_keeps_its_terms_when_the_feed_changes(
    db: Database, tenant: Tenant
) -> None:
    await _feed(db, tenant)
    # 05:30 London: the 06:00 window (05:00-07:00) is open, tomorrow's is not yet.
    now = datetime(2026, 12, 2, 5, 30, tzinfo=UTC)
    await expectations.plan_windows(db, now, timedelta(hours=30))
    assert await _due_utc(db) == ["Wed 02 06:00", "Thu 03 06:00"]

    await _feed(db, tenant, cron="0 9 * * *")
    await expectations.plan_windows(db, now + timedelta(minutes=5), timedelta(hours=30))
    assert await _due_utc(db) == ["Wed 02 06:00", "Wed 02 09:00", "Thu 03 09:00"]


async def test_a_feed_on_every_day_still_expects_a_file_on_a_public_holiday(
    db: Database, tenant: Tenant
) -> None:
    await set_calendar(db, tenant.slug, "GB", "ENG")
    await _feed(db, tenant)
    await expectations.plan_windows(db, datetime(2026, 12, 24, 12, tzinfo=UTC), timedelta(days=1))
    assert await _due_utc(db) == ["Fri 25 06:00"]


async def test_the_contact_is_warned_before_the_window_closes_with_the_local_closing_time(
    paging: Settings,
    db: Database,
    bus: Bus,
    tenant: Tenant,
    rota: Rota,
    clock: ManualClock,
    mailbox: Mailbox,
) -> None:
    """Two mornings: the file comes on the first, so only the second is warned about."""
    feed = await _feed(db, tenant, timezone=LONDON)
    clock.set(datetime(2026, 12, 1, 5, 0, tzinfo=UTC))
    async with running("monitor", paging, clock), running("notifier", paging, clock):
        await eventually(lambda: _due_utc(db))
        clock.set(datetime(2026, 12, 1, 5, 50, tzinfo=UTC))
        await bus.publish(imported(feed, tenant, f"leave_{clock.now():%Y%m%d}.csv", clock))

        async def satisfied() -> bool:
            async with db.session() as s:
                w = await s.scalar(select(ExpectationWindow).order_by(ExpectationWindow.due_at))
                return w is not None and w.state == "satisfied"

        await eventually(satisfied)
        clock.set(datetime(2026, 12, 1, 6, 45, tzinfo=UTC))  # past the first warning time
        await asyncio.sleep(SETTLE_SECONDS)
        clock.set(datetime(2026, 12, 2, 6, 31, tzinfo=UTC))  # past the second's
        mails = await eventually(lambda: at_once(_warnings(mailbox)))
        await asyncio.sleep(SETTLE_SECONDS)

    assert len(_warnings(mailbox)) == 1, "the morning the file came first was warned about"
    (text,) = mails
    assert "Hello Payroll IT" in text
    assert "We have not yet received the file we expect from you." in text
    assert "expected 2026-12-02 06:00 Europe/London; the window closes at 07:00" in text
    assert "Window closes: 2026-12-02T07:00:00+00:00" in text
    assert "Window closed" not in text


async def _warned_at(db: Database, due: datetime) -> datetime | None:
    async with db.session() as s:
        window = await s.scalar(select(ExpectationWindow).where(ExpectationWindow.due_at == due))
        return window.warned_at if window is not None else None


async def _warning_moment(
    db: Database, clock: ManualClock, mailbox: Mailbox, due_utc: datetime, count: int
) -> str:
    """Step the clock to a minute before the warning, then a minute after: the warning
    comes only after; the e-mail is the `count`th reminder."""
    warn = due_utc + timedelta(minutes=30)
    clock.set(warn - timedelta(minutes=1))
    await asyncio.sleep(SETTLE_SECONDS)
    assert await _warned_at(db, due_utc) is None, f"warned before {warn:%H:%M} UTC"
    assert len(_warnings(mailbox)) == count - 1
    clock.set(warn + timedelta(minutes=1))
    mails = await eventually(lambda: at_once(_warnings(mailbox)[count - 1 :]))
    assert await _warned_at(db, due_utc) == warn + timedelta(minutes=1)
    return mails[0]


async def _has_window(db: Database, due: datetime) -> bool:
    async with db.session() as s:
        return (
            await s.scalar(select(ExpectationWindow.id).where(ExpectationWindow.due_at == due))
        ) is not None


@pytest.mark.parametrize(
    "mornings",
    [
        pytest.param(
            # Clocks go back on 25 October 2026: BST to GMT.
            [datetime(2026, 10, 24, 5, tzinfo=UTC), datetime(2026, 10, 25, 6, tzinfo=UTC)],
            id="autumn",
        ),
        pytest.param(
            # Clocks go forward on 28 March 2027: GMT to BST.
            [datetime(2027, 3, 27, 6, tzinfo=UTC), datetime(2027, 3, 28, 5, tzinfo=UTC)],
            id="spring",
        ),
    ],
)
async def test_the_warning_keeps_to_local_time_across_a_clock_change(
    paging: Settings,
    db: Database,
    tenant: Tenant,
    rota: Rota,
    clock: ManualClock,
    mailbox: Mailbox,
    mornings: list[datetime],
) -> None:
    """A daily 06:00 file of a tenant in Europe/London: due 05:00 UTC in summer and 06:00
    UTC in winter; the warning half an hour later on the same local clock, on each side
    of the change."""
    await _feed(db, tenant)
    clock.set(mornings[0].replace(hour=0))
    async with running("monitor", paging, clock), running("notifier", paging, clock):
        for n, due_utc in enumerate(mornings, start=1):
            await eventually(lambda d=due_utc: _has_window(db, d))  # type: ignore[misc]
            text = await _warning_moment(db, clock, mailbox, due_utc, n)
            local = due_utc.astimezone(ZoneInfo(LONDON))
            assert local.hour == 6
            assert (
                f"expected {local:%Y-%m-%d} 06:00 Europe/London; the window closes at 07:00"
            ) in text


async def test_an_sla_page_gives_the_deadline_on_the_tenants_clock(
    db: Database, tenant: Tenant, clock: ManualClock
) -> None:
    clock.set(datetime(2027, 6, 1, 8, 0, tzinfo=UTC))
    rejected = FileRejected(
        file_id=uuid.uuid4(),
        tenant_id=tenant.id,
        tenant=tenant.slug,
        name="leave.xlsx",
        reason="unrecognised file name",
    )
    await signals.on_file_rejected(db, rejected, clock.now(), SlaPolicy())
    # The partner must be contacted within 6 h: by 14:00 UTC, 15:00 in London.
    assert await sla.fire_due_timers(db, clock.advance(hours=5, minutes=1))
    async with db.session() as s:
        warning = await s.scalar(select(Notice).where(Notice.reason == "sla_warning"))
    assert warning is not None
    text = page_text("sla_warning", warning.payload, "https://console.example")
    assert "SLA: contact the customer or vendor by 2027-06-01 15:00 Europe/London." in text
