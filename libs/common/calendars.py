"""A tenant's business calendar: its time zone, weekends, public holidays and closures.

Every window and schedule that says "business days" asks this one place, so the
monitor's expected-file windows, the exporter's schedules, the importer's apply
windows and first-days holds agree on what a working day is. Public holidays come
from the `holidays` library by country and subdivision; a tenant adds its own
closure dates (a site shutdown, a company day off).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import holidays

WEEKEND = (5, 6)


class CalendarError(ValueError):
    """A country or subdivision the holidays library does not know."""


def check_country(
    country: str | None, subdivision: str | None = None
) -> tuple[str | None, str | None]:
    """The codes as the holidays library spells them (`gb`, `eng`: `GB`, `ENG`); a
    readable `CalendarError` for an unknown country or subdivision."""
    if country is None:
        if subdivision:
            raise CalendarError("a subdivision needs a country")
        return None, None
    supported = holidays.list_supported_countries()
    if country.upper() not in supported:
        raise CalendarError(
            f"unknown holiday country {country!r}: use an ISO 3166 code such as GB, US, DE"
        )
    subdivs = supported[country.upper()]
    if not subdivision:
        return country.upper(), None
    known = {s.upper(): s for s in subdivs}
    if subdivision.upper() not in known:
        shown = ", ".join(subdivs[:20]) + (" …" if len(subdivs) > 20 else "")
        raise CalendarError(
            f"unknown subdivision {subdivision!r} of {country.upper()} (known: {shown})"
        )
    return country.upper(), known[subdivision.upper()]


@lru_cache(maxsize=256)
def _public(country: str, subdivision: str | None, year: int) -> dict[date, str]:
    return dict(holidays.country_holidays(country, subdiv=subdivision, years=year))


@dataclass(frozen=True)
class BusinessCalendar:
    """Working days in one time zone. Frozen and hashable, so callers can cache by it."""

    timezone: str = "UTC"
    country: str | None = None
    subdivision: str | None = None
    closures: frozenset[date] = field(default_factory=frozenset)

    @classmethod
    def of(cls, tenant: Any, timezone: str | None = None) -> BusinessCalendar:
        """The calendar of a tenant row (or any object with the same attributes);
        `timezone` overrides the tenant's own zone (a feed or export that sets one)."""
        closures = frozenset(_dates(getattr(tenant, "closure_dates", None) or ()))
        return cls(
            timezone=timezone or getattr(tenant, "timezone", None) or "UTC",
            country=(getattr(tenant, "holiday_country", None) or None),
            subdivision=(getattr(tenant, "holiday_subdivision", None) or None),
            closures=closures,
        )

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def holiday(self, day: date) -> str | None:
        """Why `day` is not a working day apart from weekends (holiday name, closure)."""
        if day in self.closures:
            return "closure"
        if self.country:
            return _public(self.country.upper(), self.subdivision, day.year).get(day)
        return None

    def is_business_day(self, day: date) -> bool:
        return day.weekday() not in WEEKEND and self.holiday(day) is None

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone)

    def local_date(self, moment: datetime) -> date:
        return self.local(moment).date()

    def next_business_day(self, day: date) -> date:
        """`day` itself if it is one, else the first business day after it."""
        for _ in range(3660):
            if self.is_business_day(day):
                return day
            day += timedelta(days=1)
        raise CalendarError("no business day within ten years")

    def add_business_days(self, day: date, n: int) -> date:
        """The business day `n` business days after `day` (`day` need not be one)."""
        while n > 0:
            day = self.next_business_day(day + timedelta(days=1))
            n -= 1
        return day

    def business_days_between(self, start: date, end: date) -> int:
        """Business days in [start, end): how many have passed from `start` up to `end`."""
        count, day = 0, start
        while day < end:
            count += self.is_business_day(day)
            day += timedelta(days=1)
        return count

    def at(self, day: date, clock: time) -> datetime:
        """Wall-clock `clock` on `day` in the calendar's zone, as an aware datetime.

        A time that does not exist (the hour skipped when clocks go forward) is taken
        as the same wall time after the jump, as zoneinfo's fold=0 does.
        """
        return datetime.combine(day, clock, tzinfo=self.zone)

    def upcoming(self, holidays_from: date, days: int = 366) -> list[tuple[date, str]]:
        """Non-working days other than weekends in the next `days`, for people to check."""
        out = []
        for i in range(days):
            day = holidays_from + timedelta(days=i)
            if (why := self.holiday(day)) is not None:
                out.append((day, why))
        return out


def _dates(values: Iterable[Any]) -> Iterable[date]:
    for v in values:
        yield v if isinstance(v, date) else date.fromisoformat(str(v))
