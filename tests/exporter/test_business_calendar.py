"""Export schedules on the customer's clock: the tenant's time zone unless the spec names
one, and on business days no run on a weekend, public holiday or closure."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from courier.cli.tenant_calendar import set_calendar
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_exports import Export
from courier.exporter.schedule import schedule_due
from tests.exporter.conftest import make_spec

BUSINESS = {"cron": "0 6 * * *", "days": "business"}


async def _runs(db: Database) -> list[tuple[str, str]]:
    """(period, run time in UTC) of every export, by period."""
    async with db.session() as s:
        exports = await s.scalars(select(Export).order_by(Export.period_start))
        return [
            (f"{e.period_start:%d %b}", f"{e.scheduled_for.astimezone(UTC):%a %d %H:%M}")
            for e in exports
        ]


async def test_a_schedule_without_a_time_zone_runs_on_the_tenants_clock(
    db: Database, tenant: Tenant
) -> None:
    created = datetime(2027, 6, 1, 12, tzinfo=UTC)
    await make_spec(db, tenant, created=created, schedule={"cron": "0 6 * * *"})
    await schedule_due(db, created + timedelta(days=2))
    # 06:00 in the tenant's Europe/London is 05:00 UTC in summer.
    assert await _runs(db) == [("01 Jun", "Wed 02 05:00"), ("02 Jun", "Thu 03 05:00")]


async def test_a_spec_that_names_a_time_zone_keeps_it(db: Database, tenant: Tenant) -> None:
    created = datetime(2027, 6, 1, 12, tzinfo=UTC)
    schedule = {"cron": "0 6 * * *", "timezone": "America/New_York"}
    await make_spec(db, tenant, created=created, schedule=schedule)
    await schedule_due(db, created + timedelta(days=1))
    assert await _runs(db) == [("01 Jun", "Wed 02 10:00")]  # 06:00 EDT


async def test_business_day_runs_skip_holidays_and_closures_and_export_their_periods_next(
    db: Database, tenant: Tenant
) -> None:
    await set_calendar(db, tenant.slug, "GB", "ENG", close=(date(2026, 12, 24),))
    created = datetime(2026, 12, 22, 12, tzinfo=UTC)
    await make_spec(db, tenant, created=created, schedule=BUSINESS)

    await schedule_due(db, datetime(2026, 12, 23, 7, tzinfo=UTC))
    assert await _runs(db) == [("22 Dec", "Wed 23 06:00")]

    # Closed on the 24th, Christmas, a weekend, Boxing Day observed on Monday 28th:
    # nothing runs, however often the scheduler looks.
    for day in (24, 25, 26, 27, 28):
        assert await schedule_due(db, datetime(2026, 12, day, 23, tzinfo=UTC)) == []

    # The next business morning exports every period held back, once.
    await schedule_due(db, datetime(2026, 12, 29, 6, 1, tzinfo=UTC))
    assert await schedule_due(db, datetime(2026, 12, 29, 9, tzinfo=UTC)) == []
    assert await _runs(db) == [
        ("22 Dec", "Wed 23 06:00"),
        ("23 Dec", "Tue 29 06:00"),
        ("24 Dec", "Tue 29 06:00"),
        ("25 Dec", "Tue 29 06:00"),
        ("26 Dec", "Tue 29 06:00"),
        ("27 Dec", "Tue 29 06:00"),
        ("28 Dec", "Tue 29 06:00"),
    ]
    await schedule_due(db, datetime(2026, 12, 30, 6, 1, tzinfo=UTC))
    assert (await _runs(db))[-1] == ("29 Dec", "Wed 30 06:00")


async def test_a_weekly_run_on_a_bank_holiday_monday_moves_to_tuesday(
    db: Database, tenant: Tenant
) -> None:
    await set_calendar(db, tenant.slug, "GB", "ENG")
    created = datetime(2027, 5, 20, 12, tzinfo=UTC)
    schedule = {"cron": "0 6 * * MON", "days": "business"}
    await make_spec(db, tenant, created=created, schedule=schedule, period="previous_week")
    # 31 May 2027 is the Spring Bank Holiday.
    await schedule_due(db, datetime(2027, 6, 1, 4, tzinfo=UTC))
    assert await _runs(db) == [("17 May", "Mon 24 05:00")]
    await schedule_due(db, datetime(2027, 6, 1, 5, 1, tzinfo=UTC))
    assert await _runs(db) == [("17 May", "Mon 24 05:00"), ("24 May", "Tue 01 05:00")]
