"""When exports run and which dates each run covers; turning due runs into export rows.

Time is always passed in (`now`), so a test can move a clock instead of sleeping.
Runs are computed in the spec's IANA time zone, else the tenant's (croniter keeps
wall-clock times across DST changes) and recorded in UTC. A schedule on business days
moves a run that falls on a weekend, public holiday or closure to the same time on the
next business day; its period stays the one it would have covered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import groupby

from croniter import croniter
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from courier.common.calendars import BusinessCalendar
from courier.common.db.engine import Database
from courier.common.db.models_exports import Export, ExportSpec
from courier.common.logging import get_logger
from courier.exporter.spec import ExportSpecModel, Period, Schedule

log = get_logger(__name__)

# A long outage must not turn into thousands of files: only the latest runs are caught up.
MAX_CATCH_UP = 62
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class Run:
    at: datetime  # UTC
    period_start: date
    period_end: date


def runs_between(schedule: Schedule, after: datetime, until: datetime) -> list[datetime]:
    """Cron firings in (after, until], as UTC instants."""
    tz = schedule.zone
    it = croniter(schedule.cron, after.astimezone(tz))
    out: list[datetime] = []
    while True:
        nxt: datetime = it.get_next(datetime)
        if nxt > until:
            return out
        out.append(nxt.astimezone(UTC))


def period_containing(period: Period, day: date) -> tuple[date, date]:
    """The period of this kind that includes `day`."""
    if period.kind == "previous_day":
        return day, day
    if period.kind == "previous_week":
        first = WEEKDAYS.index(period.week_start)
        start = day - timedelta(days=(day.weekday() - first) % 7)
        return start, start + timedelta(days=6)
    assert period.anchor is not None
    n = (day - period.anchor).days // period.length_days
    start = period.anchor + timedelta(days=n * period.length_days)
    return start, start + timedelta(days=period.length_days - 1)


def period_before(period: Period, run_local_day: date) -> tuple[date, date]:
    """The last whole period that ended before the run's local date."""
    start, end = period_containing(period, run_local_day - timedelta(days=1))
    if end >= run_local_day:  # still running: the one before it is the last whole one
        start, end = period_containing(period, start - timedelta(days=1))
    return start, end


def run_for(spec: ExportSpecModel, at: datetime, fired: datetime | None = None) -> Run:
    """The run at `at` covering the period before the day the cron `fired` (default: `at`)."""
    local_day = (fired or at).astimezone(spec.schedule.zone).date()
    start, end = period_before(spec.period, local_day)
    return Run(at, start, end)


def due_runs(
    spec: ExportSpecModel, calendar: BusinessCalendar, after: datetime, until: datetime
) -> list[Run]:
    """Runs at (after, until], in order; on business days, a firing on a day off is moved
    to the same local time on the next business day."""
    business = spec.schedule.days == "business"
    scan_from = after
    if business:
        # Firings on the days off just before `after` may have been moved past it.
        day = calendar.local_date(after)
        for _ in range(366):
            if calendar.is_business_day(day - timedelta(days=1)):
                break
            day -= timedelta(days=1)
        scan_from = min(after, calendar.at(day, time()))
    runs = []
    for fired in runs_between(spec.schedule, scan_from, until):
        at, local = fired, calendar.local(fired)
        if business and not calendar.is_business_day(local.date()):
            moved = calendar.next_business_day(local.date())
            at = calendar.at(moved, local.time()).astimezone(UTC)
        if after < at <= until:
            runs.append(run_for(spec, at, fired))
    return sorted(runs, key=lambda r: (r.at, r.period_start))


def _export(spec_row: ExportSpec, run: Run) -> Export:
    return Export(
        spec_id=spec_row.id,
        tenant_id=spec_row.tenant_id,
        period_start=run.period_start,
        period_end=run.period_end,
        scheduled_for=run.at,
        status="pending",
    )


async def claim_period(db: Database, spec_row: ExportSpec, run: Run) -> Export | None:
    """Insert the export for a period; None when it exists already (unique spec + period)."""
    try:
        async with db.transaction() as s:
            export = _export(spec_row, run)
            s.add(export)
    except IntegrityError:
        return None
    return export


async def claim_together(db: Database, spec_row: ExportSpec, runs: list[Run]) -> list[Export]:
    """Claim runs that share a time in one transaction: the next pass starts after that
    time, so none of them may be left behind. Where one exists already, one by one."""
    if len(runs) == 1:
        return [e for e in [await claim_period(db, spec_row, runs[0])] if e is not None]
    try:
        async with db.transaction() as s:
            exports = [_export(spec_row, run) for run in runs]
            s.add_all(exports)
        return exports
    except IntegrityError:
        return [e for run in runs if (e := await claim_period(db, spec_row, run)) is not None]


async def schedule_due(db: Database, now: datetime) -> list[Export]:
    """Create an export for every run due by `now`, including runs missed while down."""
    created: list[Export] = []
    async with db.session() as s:
        specs = list(await s.scalars(select(ExportSpec).where(ExportSpec.enabled.is_(True))))
        last_runs = dict(
            (
                await s.execute(
                    # A sample asked for today must not pass for today's scheduled run.
                    select(Export.spec_id, func.max(Export.scheduled_for))
                    .where(Export.test.is_(False))
                    .group_by(Export.spec_id)
                )
            ).all()
        )
    for spec_row in specs:
        spec = ExportSpecModel.of(spec_row)
        calendar = BusinessCalendar.of(spec_row.tenant, spec.schedule.timezone)
        last = last_runs.get(spec_row.id)
        if last is not None and last.tzinfo is None:
            last = last.replace(tzinfo=UTC)
        since = max(spec_row.created_at, last) if last else spec_row.created_at
        due = due_runs(spec, calendar, since, now)
        if len(due) > MAX_CATCH_UP:
            log.warning(
                "skipping old missed runs",
                tenant_id=str(spec_row.tenant_id),
                spec=spec_row.name,
                skipped=len(due) - MAX_CATCH_UP,
            )
            due = due[-MAX_CATCH_UP:]
        for _, group in groupby(due, key=lambda r: r.at):
            for export in await claim_together(db, spec_row, list(group)):
                log.info(
                    "export scheduled",
                    tenant_id=str(spec_row.tenant_id),
                    spec=spec_row.name,
                    export_id=str(export.id),
                    period_start=str(export.period_start),
                )
                created.append(export)
    return created
