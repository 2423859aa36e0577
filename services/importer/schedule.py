"""When a checked file may change the platform's data: holds, first days and apply windows.

A file is checked as it arrives. It is held for a person to approve when its feed
says so (`hold_for_approval`: always, until a date, or for the first N business days
from the feed's first live file), and it waits for the feed's `apply_window` when it
arrives outside it: its change set is computed and shown (status `scheduled`, with
`apply_at`), the partner hears when it will be applied, and nothing changes yet.

The importer's own timer applies them at the window (`windows.py`). Later files of a
feed queue behind a scheduled (or held) one, so a feed's files land in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common.calendars import BusinessCalendar, CalendarError
from courier.common.db.models import Feed, Import, Tenant
from courier.common.first_days import LiveDays, first_days
from courier.importer.changes import fingerprint
from courier.importer.spec import ApplyWindow, FeedSpec

HELD_BY_FEED = "the feed holds files for approval (hold_for_approval)"
HELD_BEHIND = "an earlier file of this feed awaits approval"


@dataclass(frozen=True)
class Window:
    opens_at: datetime
    closes_at: datetime

    def is_open(self, now: datetime) -> bool:
        return self.opens_at <= now < self.closes_at


@dataclass(frozen=True)
class Slot:
    """When a deferred file is applied, and until when its window stays open."""

    apply_at: datetime
    closes_at: datetime | None
    why: str
    # The zone the partner is told the time in.
    calendar: BusinessCalendar


def window_for(window: ApplyWindow, calendar: BusinessCalendar, now: datetime) -> Window:
    """The window open at `now`, else the next one to open (wall-clock times, so a DST
    change moves it with the clocks)."""
    day = calendar.local_date(now) - timedelta(days=1)
    overnight = timedelta(days=1 if window.end <= window.start else 0)
    for _ in range(3700):
        if window.days == "every_day" or calendar.is_business_day(day):
            closes = calendar.at(day + overnight, window.end).astimezone(UTC)
            if closes > now:
                return Window(calendar.at(day, window.start).astimezone(UTC), closes)
        day += timedelta(days=1)
    raise CalendarError("no apply window within ten years")


def calendar_of(spec: FeedSpec, tenant: Tenant | None) -> BusinessCalendar:
    zone = spec.apply_window.timezone if spec.apply_window else None
    return BusinessCalendar.of(tenant, zone)


def local_text(calendar: BusinessCalendar, moment: datetime) -> str:
    """How the partner reads a time: local wall clock, abbreviation and zone name."""
    local = calendar.local(moment)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()} ({calendar.timezone})"


def start_live(feed: Feed, imp: Import, now: datetime) -> None:
    """The feed's first live file starts its live period (in that file's transaction)."""
    if not imp.test and feed.live_started_at is None:
        feed.live_started_at = now


async def hold_reason(
    session: AsyncSession, feed: Feed, spec: FeedSpec, imp: Import, now: datetime
) -> str | None:
    """Why this file waits for a person's approval (None: it does not)."""
    if imp.test:
        return None
    hold = spec.hold_for_approval
    if isinstance(hold, LiveDays):
        tenant = await session.get(Tenant, feed.tenant_id)
        period = first_days(hold, feed.live_started_at, BusinessCalendar.of(tenant), now)
        if period.holding:
            return period.describe()
    elif spec.holds_for_approval(now.date()):
        return HELD_BY_FEED
    waiting = await session.scalar(
        select(Import.id)
        .where(Import.feed_id == feed.id, Import.status == "awaiting_approval")
        .limit(1)
    )
    return HELD_BEHIND if waiting is not None else None


async def slot_for(
    session: AsyncSession, feed: Feed, spec: FeedSpec, imp: Import, now: datetime
) -> Slot | None:
    """When a checked (or approved) file is to be applied; None: now."""
    if imp.test:
        return None
    ahead = await session.scalar(
        select(func.max(Import.apply_at)).where(
            Import.feed_id == feed.id, Import.status == "scheduled", Import.id != imp.id
        )
    )
    if ahead is None and spec.apply_window is None:
        # Nothing scheduled ahead and no window: now (the tenant's calendar is not needed).
        return None
    tenant = await session.get(Tenant, feed.tenant_id)
    calendar = calendar_of(spec, tenant)
    window = window_for(spec.apply_window, calendar, now) if spec.apply_window else None
    if ahead is None and (window is None or window.is_open(now)):
        return None
    behind = "behind an earlier scheduled file of this feed"
    if window is None:
        return Slot(ahead, None, behind, calendar)
    assert spec.apply_window is not None
    label = spec.apply_window.label()
    if ahead is not None and (window.is_open(now) or ahead > window.opens_at):
        why = f"{behind} (apply window {label})"
        return Slot(max(ahead, window.opens_at), window.closes_at, why, calendar)
    why = f"outside the feed's apply window {label}"
    return Slot(window.opens_at, window.closes_at, why, calendar)


async def defer(session: AsyncSession, imp: Import, slot: Slot) -> None:
    """Mark a checked file to be applied at `slot` (a file the check rejected or that a
    guard held is left as it is). Its change set is kept, to tell at the window whether
    the data changed meanwhile."""
    if imp.status not in ("completed", "completed_with_errors"):
        return
    when = local_text(slot.calendar, slot.apply_at)
    imp.status, imp.apply_at = "scheduled", slot.apply_at
    imp.details = {
        **(imp.details or {}),
        "scheduled": f"applies at {when}: {slot.why}",
        "apply_at_local": when,
        "window_closes_at": slot.closes_at.isoformat() if slot.closes_at else None,
        "plan_sha256": await fingerprint(session, imp.id),
    }
