"""Exporter fixtures: timesheets in the database, an export spec, OpenPGP keys."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from courier.cli.section_exports import upsert_export_spec
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_exports import Export, ExportSpec, Timesheet
from courier.exporter.schedule import Run, claim_period
from courier.exporter.spec import ExportSpecModel
from courier.exporter.worker import Exporter
from tests.support.pgp_fixtures import (  # noqa: F401
    partner_gpg,
    pgp_settings,
    tenant_keys,
    tenant_with_keys,
)

DAY = date(2026, 11, 2)  # a Monday


def sheet(tenant: Tenant, employee: str, name: str, day: date = DAY, **kw: Any) -> Timesheet:
    start = datetime(day.year, day.month, day.day, 9, 0, tzinfo=UTC)
    values: dict[str, Any] = {
        "tenant_id": tenant.id,
        "employee_id": employee,
        "employee_name": name,
        "work_date": day,
        "start_at": start,
        "end_at": start + timedelta(hours=8, minutes=30),
        "break_minutes": 30,
        "hours": Decimal("8.00"),
        "location": "Leeds Central",
        "cost_centre": "CC-100",
        "approval": "approved",
    }
    values.update(kw)
    return Timesheet(**values)


@pytest.fixture
async def timesheets(db: Database, tenant: Tenant) -> list[Timesheet]:
    rows = [
        sheet(tenant, "E1", "Amira Ahmed"),
        sheet(tenant, "E2", '=HYPERLINK("http://evil","x")', hours=Decimal("7.50")),
        sheet(tenant, "E3", "Ben Brown", cost_centre="-5", approval="pending"),
        sheet(tenant, "E4", "Chloé Dubois", cost_centre="+cmd|' /C calc'!A0"),
        sheet(tenant, "E5", "Dev Evans", day=DAY + timedelta(days=1)),
    ]
    async with db.transaction() as s:
        s.add_all(rows)
    return rows


def spec_model(**overrides: Any) -> ExportSpecModel:
    data: dict[str, Any] = {
        "name": "payroll",
        "kind": "timesheets",
        "schedule": {"cron": "0 6 * * *", "timezone": "Europe/London"},
        "period": "previous_day",
        "columns": [
            {"field": "employee_id", "header": "Employee"},
            {"field": "employee_name", "header": "Name"},
            {"field": "work_date", "header": "Date"},
            {"field": "start", "header": "Start"},
            {"field": "hours", "header": "Hours"},
            {"field": "cost_centre", "header": "Cost centre"},
        ],
        "file_name": "timesheets_{start:%Y%m%d}.csv",
        "destinations": [{"type": "pickup"}],
    }
    data.update(overrides)
    return ExportSpecModel.model_validate(data)


async def make_spec(
    db: Database, tenant: Tenant, created: datetime | None = None, **overrides: Any
) -> ExportSpec:
    return await upsert_export_spec(db, tenant, spec_model(**overrides), now=created)


@pytest.fixture
def quick_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exporter service that looks for due work five times a second."""
    monkeypatch.setenv("COURIER_EXPORTER_TICK_SECONDS", "0.2")


async def exports(db: Database) -> list[Export]:
    async with db.session() as s:
        return list(await s.scalars(select(Export)))


async def run_export(db: Database, exporter: Exporter, tenant: Tenant, **overrides: Any) -> Export:
    """Apply a spec, claim its export of DAY and let `exporter` build and deliver it."""
    spec_row = await make_spec(db, tenant, **overrides)
    export = await claim_period(db, spec_row, Run(exporter.clock(), DAY, DAY))
    assert export is not None
    await exporter.process(export.id)
    async with db.session() as s:
        found = await s.get(Export, export.id, populate_existing=True)
        assert found is not None
        return found
