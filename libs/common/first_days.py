"""First-days approval: a feed's first live files are held until N business days passed.

`hold_for_approval: {live_days: 5}` holds every file from the feed's first live
(non-test) file, whose arrival the importer records on the feed, until five business
days of the tenant's calendar have passed. The importer decides the hold with this;
the console and the CLI show the days left with the same arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import Field

from courier.common.calendars import BusinessCalendar
from courier.common.specs import StrictModel


class LiveDays(StrictModel):
    """`hold_for_approval: {live_days: N}`: hold from the first live file for N business days."""

    live_days: int = Field(ge=1, le=366)


@dataclass(frozen=True)
class FirstDays:
    live_days: int
    # When the feed's first live file arrived (None: none yet; the period has not begun).
    started_at: datetime | None
    # Business days of holding still to come, counting today (0: the period is over).
    days_left: int
    # The first day files flow without hold (None until the period has begun).
    ends_on: date | None
    timezone: str

    @property
    def holding(self) -> bool:
        return self.days_left > 0

    def describe(self) -> str:
        """One line for people: what the period is doing now."""
        if self.started_at is None:
            return (
                f"first-days approval: {self.live_days} business days, "
                "from the feed's first live file (none yet)"
            )
        since = self.started_at.astimezone(BusinessCalendar(self.timezone).zone)
        when = f"{since:%Y-%m-%d %H:%M} {self.timezone}"
        if not self.holding:
            return f"first-days approval: ended on {self.ends_on} (live since {when})"
        days = "business day" if self.days_left == 1 else "business days"
        return (
            f"first-days approval: {self.days_left} {days} left, since {when} "
            f"(files flow without hold from {self.ends_on})"
        )


def first_days(
    hold: LiveDays, started_at: datetime | None, calendar: BusinessCalendar, now: datetime
) -> FirstDays:
    """Where the period stands at `now`. The day the first file came counts as a day of the
    period when it is a business day; weekends, holidays and closures do not count."""
    if started_at is None:
        return FirstDays(hold.live_days, None, hold.live_days, None, calendar.timezone)
    start = calendar.local_date(started_at)
    elapsed = calendar.business_days_between(start, calendar.local_date(now))
    return FirstDays(
        live_days=hold.live_days,
        started_at=started_at,
        days_left=max(0, hold.live_days - elapsed),
        ends_on=_ends_on(calendar, start, hold.live_days),
        timezone=calendar.timezone,
    )


def _ends_on(calendar: BusinessCalendar, start: date, live_days: int) -> date:
    """The day after the period's last business day."""
    day, counted = start, 0
    while counted < live_days:
        counted += calendar.is_business_day(day)
        day += timedelta(days=1)
    return day


def first_days_of(feed: Any, tenant: Any, now: datetime) -> FirstDays | None:
    """The first-days period of a feed row (None: its spec declares none)."""
    hold = (feed.spec or {}).get("hold_for_approval")
    if not isinstance(hold, dict) or "live_days" not in hold:
        return None
    return first_days(
        LiveDays.model_validate(hold), feed.live_started_at, BusinessCalendar.of(tenant), now
    )
