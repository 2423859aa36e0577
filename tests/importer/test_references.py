"""References around a bulk import hold on both databases (PostgreSQL checks them per statement)."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from courier.common.db.models import Feed, Import, ImportRecord, LeaveBalance
from tests.support.fixtures_data import leave_csv

FILE = leave_csv("E1,annual,10,2026-11-01", "E2,sick,5.5,2026-11-01")


@pytest.fixture
async def imported(feed, send) -> Import:
    await feed("leave", "leave_balances", "leave_*.csv")
    imp = await send("leave_1.csv", FILE)
    assert imp.status == "completed"
    return imp


async def test_deleting_an_import_deletes_its_audit_records(db, imported) -> None:
    async with db.transaction() as s:
        await s.execute(delete(Import).where(Import.id == imported.id))
    async with db.session() as s:
        left = await s.scalar(select(func.count()).where(ImportRecord.import_id == imported.id))
    assert left == 0


async def test_deleting_a_feed_keeps_its_balances_without_an_owner(db, imported) -> None:
    async with db.transaction() as s:
        await s.execute(delete(Feed).where(Feed.id == imported.feed_id))
    async with db.session() as s:
        owners = list(await s.scalars(select(LeaveBalance.feed_id)))
    assert owners == [None, None]


async def test_a_balance_for_an_unknown_tenant_or_feed_is_refused(db, tenant, imported) -> None:
    row = {
        "employee_id": "E9", "leave_type": "annual", "balance_hours": Decimal(1),
        "as_of": date(2026, 11, 1),
    }  # fmt: skip
    for bad in ({"tenant_id": uuid.uuid4()}, {"tenant_id": tenant.id, "feed_id": uuid.uuid4()}):
        with pytest.raises(IntegrityError):
            async with db.transaction() as s:
                s.add(LeaveBalance(**row, **bad))
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(LeaveBalance)) == 2


async def test_an_audit_record_for_an_unknown_import_is_refused(db, imported) -> None:
    with pytest.raises(IntegrityError):
        async with db.transaction() as s:
            s.add(ImportRecord(import_id=uuid.uuid4(), row_number=2, action="created"))
