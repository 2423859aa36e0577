"""Leave balances: upsert and full sync, audited record by record on both database paths."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from courier.common.db.engine import Database
from courier.common.db.models import LeaveBalance
from tests.importer.conftest import records
from tests.support.fixtures_data import leave_csv


async def balances(db: Database) -> dict[tuple[str, str], Decimal]:
    async with db.session() as s:
        rows = await s.scalars(select(LeaveBalance))
        return {(r.employee_id, r.leave_type): Decimal(r.balance_hours) for r in rows}


async def test_upsert_creates_updates_and_keeps_with_changes_audited(db, feed, send) -> None:
    await feed("leave", "leave_balances", "leave_{yyyyMMdd}.csv")
    first = await send(
        "leave_20261101.csv", leave_csv("E1,annual,80,2026-11-01", "E2,sick,8,2026-11-01")
    )
    assert (first.status, first.created) == ("completed", 2)
    second = await send(
        "leave_20261102.csv",
        leave_csv("E1,annual,72.5,2026-11-02", "E2,sick,8.00,2026-11-01", "E3,annual,1,2026-11-02"),
    )
    assert (second.status, second.created, second.updated, second.unchanged) == (
        "completed", 1, 1, 1,
    )  # fmt: skip
    recs = {r.row_number: r for r in await records(db, second)}
    assert recs[2].record_key == "E1/annual"
    assert recs[2].changes == {
        "balance_hours": ["80.00", "72.50"],
        "as_of": ["2026-11-01", "2026-11-02"],
    }
    assert recs[3].action == "unchanged" and recs[3].changes is None
    assert recs[4].changes == {"balance_hours": [None, "1.00"], "as_of": [None, "2026-11-02"]}
    assert (await balances(db))[("E1", "annual")] == Decimal("72.50")
