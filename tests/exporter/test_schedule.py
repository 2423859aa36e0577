"""Schedules in the spec's time zone, periods, catch-up, and one export per period."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_exports import Export
from courier.exporter.schedule import period_before, period_containing, runs_between, schedule_due
from courier.exporter.spec import Period, Schedule
from tests.exporter.conftest import make_spec


def test_daily_run_keeps_local_time_across_the_clock_change() -> None:
    runs = runs_between(
        Schedule(cron="0 6 * * *", timezone="Europe/London"),
        datetime(2026, 10, 23, 12, tzinfo=UTC),
        datetime(2026, 10, 27, 12, tzinfo=UTC),
    )
    # 06:00 BST is 05:00 UTC until 25 October, 06:00 GMT afterwards.
    assert [r.strftime("%d %H:%M") for r in runs] == [
        "24 05:00",
        "25 06:00",
        "26 06:00",
        "27 06:00",
    ]


def test_periods_cover_the_day_week_or_pay_period_before_the_run() -> None:
    monday = date(2026, 11, 9)
    assert period_before(Period(kind="previous_day"), monday) == (date(2026, 11, 8),) * 2
    assert period_before(Period(kind="previous_week"), monday) == (
        date(2026, 11, 2),
        date(2026, 11, 8),
    )
    sunday_weeks = Period(kind="previous_week", week_start="sunday")
    assert period_containing(sunday_weeks, monday) == (date(2026, 11, 8), date(2026, 11, 14))
    fortnight = Period(kind="pay_period", anchor=date(2026, 1, 5), length_days=14)
    assert period_before(fortnight, date(2026, 11, 23)) == (date(2026, 11, 9), date(2026, 11, 22))
    assert period_before(fortnight, date(2026, 11, 27)) == (date(2026, 11, 9), date(2026, 11, 22))


async def _exports(db: Database) -> list[Export]:
    async with db.session() as s:
        return list(await s.scalars(select(Export).order_by(Export.period_start)))


async def test_runs_missed_while_down_are_caught_up_once(db: Database, tenant: Tenant) -> None:
    created = datetime(2026, 11, 2, 12, tzinfo=UTC)
    await make_spec(db, tenant, created=created)
    assert await schedule_due(db, created + timedelta(hours=1)) == []

    # Down for three days: each missed morning gets its period, once.
    back = created + timedelta(days=3, hours=1)
    made = await schedule_due(db, back)
    assert [(e.period_start, e.period_end) for e in made] == [
        (date(2026, 11, 2), date(2026, 11, 2)),
        (date(2026, 11, 3), date(2026, 11, 3)),
        (date(2026, 11, 4), date(2026, 11, 4)),
    ]
    assert await schedule_due(db, back) == []
    assert await schedule_due(db, back + timedelta(minutes=5)) == []
    assert len(await _exports(db)) == 3


async def test_two_replicas_never_schedule_a_period_twice(db: Database, tenant: Tenant) -> None:
    created = datetime(2026, 11, 2, 12, tzinfo=UTC)
    await make_spec(db, tenant, created=created)
    other = Database(db.url)
    try:
        now = created + timedelta(days=5)
        first, second = await asyncio.gather(schedule_due(db, now), schedule_due(other, now))
    finally:
        await other.dispose()
    assert len(first) + len(second) == 5
    periods = [e.period_start for e in await _exports(db)]
    assert len(periods) == len(set(periods)) == 5


async def test_hourly_runs_of_a_daily_period_make_one_export(db: Database, tenant: Tenant) -> None:
    created = datetime(2026, 11, 3, 0, 30, tzinfo=UTC)
    await make_spec(db, tenant, created=created, schedule={"cron": "0 * * * *"})
    await schedule_due(db, created + timedelta(hours=10))
    assert [e.period_start for e in await _exports(db)] == [date(2026, 11, 2)]
