"""`courier demo seed`: realistic timesheets and actuals for the demo tenant and benchmarks."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from sqlalchemy import insert

from courier.cli import provision
from courier.cli.context import run_with_db
from courier.cli.output import Output
from courier.common.db.engine import Database
from courier.common.db.models_exports import Actual, Timesheet

app = typer.Typer(no_args_is_help=True, help="Demo data.")
console = Output()

FIRST = ("Amira", "Ben", "Chloé", "Dev", "Eilidh", "Femi", "Grace", "Hamza", "Ines", "Jakub")
LAST = ("Ahmed", "Brown", "Campbell", "Dubois", "Evans", "Ferreira", "Garcia", "Hughes")
LOCATIONS = ("Leeds Central", "Manchester Piccadilly", "Bristol Harbourside", "Glasgow Queen St")
SHIFTS = ((7, 0, 8), (9, 0, 8), (12, 0, 6), (14, 0, 8), (22, 0, 8))  # start h, m, length h
RATE = Decimal("13.85")
BATCH = 5000


def timesheet_rows(
    tenant_id: uuid.UUID, first: date, days: int, employees: int, tz: str, seed: int = 7
) -> Iterator[dict[str, Any]]:
    """One shift per employee per working day; most approved, some pending or rejected."""
    rnd = random.Random(seed)
    zone = ZoneInfo(tz)
    staff = [
        (f"E{n:06d}", f"{rnd.choice(FIRST)} {rnd.choice(LAST)}", rnd.choice(LOCATIONS))
        for n in range(1, employees + 1)
    ]
    for d in range(days):
        day = first + timedelta(days=d)
        for emp_id, name, loc in staff:
            if rnd.random() < 2 / 7:
                continue  # a day off
            h, m, length = rnd.choice(SHIFTS)
            start = datetime(day.year, day.month, day.day, h, m, tzinfo=zone)
            brk = 30 if length >= 6 else 0
            end = start + timedelta(hours=length, minutes=brk)
            roll = rnd.random()
            yield {
                "tenant_id": tenant_id,
                "employee_id": emp_id,
                "employee_name": name,
                "work_date": day,
                "start_at": start.astimezone(UTC),
                "end_at": end.astimezone(UTC),
                "break_minutes": brk,
                "hours": Decimal(length).quantize(Decimal("0.01")),
                "location": loc,
                "cost_centre": f"CC-{LOCATIONS.index(loc) + 100}",
                "approval": "approved"
                if roll < 0.9
                else ("pending" if roll < 0.97 else "rejected"),
            }


def actual_rows(
    tenant_id: uuid.UUID, first: date, days: int, seed: int = 7
) -> Iterator[dict[str, Any]]:
    rnd = random.Random(seed)
    for d in range(days):
        for loc in LOCATIONS:
            hours = Decimal(rnd.randint(120, 480)).quantize(Decimal("0.01"))
            yield {
                "tenant_id": tenant_id,
                "location": loc,
                "work_date": first + timedelta(days=d),
                "hours": hours,
                "cost": (hours * RATE).quantize(Decimal("0.01")),
            }


async def seed(
    db: Database, tenant_slug: str, first: date, days: int, employees: int
) -> tuple[int, int]:
    """Insert the data (COPY on PostgreSQL, batched inserts elsewhere); returns row counts."""
    tenant = await provision.ensure_tenant(db, tenant_slug, "Demo Customer", "Europe/London")
    sheets = timesheet_rows(tenant.id, first, days, employees, tenant.timezone)
    n_sheets = await _insert(db, Timesheet, sheets)
    n_actuals = await _insert(db, Actual, actual_rows(tenant.id, first, days))
    return n_sheets, n_actuals


async def _insert(db: Database, table: Any, rows: Iterator[dict[str, Any]]) -> int:
    total = 0
    if db.engine.dialect.name == "postgresql":
        async with db.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            while batch := [r for _, r in zip(range(50_000), rows, strict=False)]:
                cols = list(batch[0])
                await driver.copy_records_to_table(
                    table.__tablename__, records=[tuple(r[c] for c in cols) for r in batch],
                    columns=cols,
                )  # fmt: skip
                total += len(batch)
        return total
    while batch := [r for _, r in zip(range(BATCH), rows, strict=False)]:
        async with db.transaction() as s:
            await s.execute(insert(table), batch)
        total += len(batch)
    return total


@app.command("seed")
def seed_command(
    tenant: str = "demo",
    days: Annotated[int, typer.Option(help="How many days back from yesterday.")] = 28,
    employees: int = 200,
) -> None:
    """Fill timesheets and actuals for a tenant (created if missing)."""
    first = date.today() - timedelta(days=days)

    sheets, actuals = run_with_db(lambda db: seed(db, tenant, first, days, employees))
    console.print(f"tenant {tenant}: {sheets} timesheet lines and {actuals} actuals from {first}")
