"""`courier tenants calendar`: the public holidays and closures a tenant's business days skip.

Every window and schedule set to business days reads the tenant's calendar when it is
laid out, so what this command prints is what the monitor and the exporter will skip.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Annotated, Any

import typer
from sqlalchemy import select

from courier.cli.context import run_with_db
from courier.cli.output import Output
from courier.common.calendars import BusinessCalendar, CalendarError, check_country
from courier.common.db.engine import Database
from courier.common.db.models import Tenant

console = Output()
err = Output(stderr=True)
# Clears the holiday calendar: `--country none`.
NONE = "none"


class CalendarRefused(Exception):
    """What the operator asked for cannot be set; the message says why."""


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise CalendarRefused(f"{value!r} is not a date: use YYYY-MM-DD") from exc


async def set_calendar(
    db: Database,
    slug: str,
    country: str | None = None,
    subdivision: str | None = None,
    close: tuple[date, ...] = (),
    reopen: tuple[date, ...] = (),
) -> Tenant:
    """Change what is given, keep the rest. A new country drops the old subdivision."""
    async with db.transaction() as session:
        tenant = await session.scalar(select(Tenant).where(Tenant.slug == slug))
        if tenant is None:
            raise CalendarRefused(f"no tenant {slug!r}; see `courier tenants list`")
        new_country = tenant.holiday_country
        new_subdivision = tenant.holiday_subdivision
        if country is not None:
            clearing = country.lower() == NONE
            if clearing or country.upper() != (new_country or "").upper():
                new_subdivision = None
            new_country = None if clearing else country
        if subdivision is not None:
            new_subdivision = None if subdivision.lower() == NONE else subdivision
        try:
            new_country, new_subdivision = check_country(new_country, new_subdivision)
        except CalendarError as exc:
            raise CalendarRefused(str(exc)) from exc
        closures = {date.fromisoformat(d) for d in tenant.closure_dates or []}
        closures = (closures | set(close)) - set(reopen)
        tenant.holiday_country, tenant.holiday_subdivision = new_country, new_subdivision
        tenant.closure_dates = [d.isoformat() for d in sorted(closures)]
    return tenant


def describe(tenant: Tenant) -> str:
    """One line: whose public holidays, which closures."""
    if tenant.holiday_country:
        region = "-".join(p for p in (tenant.holiday_country, tenant.holiday_subdivision) if p)
        holidays = f"public holidays of {region}"
    else:
        holidays = "no public holidays"
    closures = ", ".join(tenant.closure_dates or []) or "none"
    return f"{holidays}; closures: {closures}"


def upcoming(tenant: Tenant, start: date, days: int) -> list[dict[str, Any]]:
    calendar = BusinessCalendar.of(tenant)
    return [
        {"date": d.isoformat(), "weekday": f"{d:%a}", "why": why}
        for d, why in calendar.upcoming(start, days)
    ]


def today_of(tenant: Tenant) -> date:
    """Today in the tenant's zone."""
    return BusinessCalendar.of(tenant).local_date(datetime.now(UTC))


def calendar(
    slug: Annotated[str, typer.Argument(metavar="TENANT")],
    country: Annotated[
        str | None,
        typer.Option(help="Public holidays of this country (ISO 3166, e.g. GB); 'none' clears."),
    ] = None,
    subdivision: Annotated[
        str | None, typer.Option(help="Region of the country (e.g. ENG, SCT); 'none' clears.")
    ] = None,
    close: Annotated[
        list[str] | None, typer.Option(help="A closure date (YYYY-MM-DD); repeat for more.")
    ] = None,
    reopen: Annotated[
        list[str] | None, typer.Option(help="Remove a closure date; repeat for more.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--from", help="List days off from this date (default: today)."),
    ] = None,
    days: Annotated[int, typer.Option(min=1, max=3660, help="How many days to list.")] = 365,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Set the tenant's business calendar and list its coming days off.

    Windows and export schedules set to `days: business` skip weekends, these public
    holidays and these closures. With no option, only lists them.
    """

    try:
        closing = tuple(_day(d) for d in close or ())
        reopening = tuple(_day(d) for d in reopen or ())
        first = _day(since) if since else None
    except CalendarRefused as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    tenant: Tenant = run_with_db(
        lambda db: set_calendar(db, slug, country, subdivision, closing, reopening),
        refusals=(CalendarRefused,),
    )
    start = first or today_of(tenant)
    off = upcoming(tenant, start, days)
    if as_json:
        view = {
            "tenant": tenant.slug,
            "timezone": tenant.timezone,
            "country": tenant.holiday_country,
            "subdivision": tenant.holiday_subdivision,
            "closures": list(tenant.closure_dates or []),
            "upcoming": off,
        }
        console.print_json(json.dumps(view))
        return
    console.print(f"tenant {tenant.slug} ({tenant.timezone}): {describe(tenant)}")
    if not off:
        console.print(f"no days off besides weekends in the {days} days from {start}")
        return
    console.print(f"days off besides weekends, from {start}:")
    for row in off:
        console.print(f"  {row['date']} {row['weekday']}  {row['why']}", highlight=False)
