"""When exports run and which dates each run covers; turning due runs into export rows.

Time is always passed in (`now`), so a test can move a clock instead of sleeping.
Runs are computed in the spec's IANA time zone (croniter keeps wall-clock times
across DST changes) and recorded in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

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
    tz = ZoneInfo(schedule.timezone)
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


def run_for(spec: ExportSpecModel, at: datetime) -> Run:
    local_day = at.astimezone(ZoneInfo(spec.schedule.timezone)).date()
    start, end = period_before(spec.period, local_day)
    return Run(at, start, end)


async def claim_period(db: Database, spec_row: ExportSpec, run: Run) -> Export | None:
    """Insert the export for a period; None when it exists already (unique spec + period)."""
    try:
        async with db.transaction() as s:
            export = Export(
                spec_id=spec_row.id,
                tenant_id=spec_row.tenant_id,
                period_start=run.period_start,
                period_end=run.period_end,
                scheduled_for=run.at,
                status="pending",
            )
            s.add(export)
    except IntegrityError:
        return None
    return export


async def schedule_due(db: Database, now: datetime) -> list[Export]:
    """Create an export for every run due by `now`, including runs missed while down."""
    created: list[Export] = []
    async with db.session() as s:
        specs = list(await s.scalars(select(ExportSpec).where(ExportSpec.enabled.is_(True))))
        last_runs = dict(
            (
                await s.execute(
                    select(Export.spec_id, func.max(Export.scheduled_for)).group_by(Export.spec_id)
                )
            ).all()
        )
    for spec_row in specs:
        spec = ExportSpecModel.model_validate(spec_row.spec)
        last = last_runs.get(spec_row.id)
        if last is not None and last.tzinfo is None:
            last = last.replace(tzinfo=UTC)
        since = max(spec_row.created_at, last) if last else spec_row.created_at
        due = runs_between(spec.schedule, since, now)
        if len(due) > MAX_CATCH_UP:
            log.warning(
                "skipping old missed runs",
                tenant_id=str(spec_row.tenant_id),
                spec=spec_row.name,
                skipped=len(due) - MAX_CATCH_UP,
            )
            due = due[-MAX_CATCH_UP:]
        for at in due:
            export = await claim_period(db, spec_row, run_for(spec, at))
            if export is not None:
                log.info(
                    "export scheduled",
                    tenant_id=str(spec_row.tenant_id),
                    spec=spec_row.name,
                    export_id=str(export.id),
                    period_start=str(export.period_start),
                )
                created.append(export)
    return created
