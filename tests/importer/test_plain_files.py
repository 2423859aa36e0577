"""A plain file (parsed by PostgreSQL) gets exactly the answer the Python reader gives."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from courier.common.db.models import LeaveBalance
from courier.importer import apply
from tests.importer.conftest import records
from tests.support.fixtures_data import leave_csv

ROWS = (
    "E1,annual,10,2026-11-01",
    " E2 , sick ,  5.5 , 2026-11-01 ",
    "E3,annual,1.234,2026-11-01",  # too many decimal places
    "E4,annual,1e2,2026-11-01",  # a number Python reads; not plainly one
    "E5,annual,+7,2026-11-01",
    "E6,annual,-0,2026-02-29",  # no such day
    "E7,annual,3,2028-02-29",
    "E8,annual,3,2026-W48-3",  # an ISO week date
    "E9,annual,,2026-11-01",  # required
    ",annual,1,2026-11-01",
    "E1,annual,4,2026-11-01",  # duplicate key
    "E10,annual,99999999999,2026-11-01",  # out of range
    "E11,annual,x,0000-01-01",
    "E12," + "t" * 65 + ",1,2026-11-01",  # longer than the field
    "E13,annual,.5,2026-12-31",
)


async def test_plain_and_quoted_files_get_the_same_audit(db, feed, send, monkeypatch) -> None:
    # Small files are read in Python (`small_pg`); these take the paths large files take.
    monkeypatch.setattr(apply, "PYTHON_READS_UP_TO", -1)
    # Held: both change sets are computed against the same (empty) table.
    await feed("leave", "leave_balances", "leave_*.csv", hold_for_approval=True)
    plain = await send("leave_1.csv", leave_csv(*ROWS))
    # A quoted cell sends the same rows through the Python reader.
    quoted = await send("leave_2.csv", leave_csv('"E1",annual,10,2026-11-01', *ROWS[1:]))

    def audit(recs: list) -> list[tuple]:
        return [(r.row_number, r.record_key, r.action, r.changes, r.error) for r in recs]

    a, b = audit(await records(db, plain)), audit(await records(db, quoted))
    assert a == b
    assert (plain.created, plain.errored) == (7, 8)


@pytest.mark.parametrize("first_cell", ["E1", '"E1"'], ids=["plain", "quoted"])
async def test_a_repeated_key_in_a_first_import_errs_the_later_row_and_applies_the_rest(
    db, feed, send, monkeypatch, first_cell
) -> None:
    # The tenant has no balances yet: the table's unique key is what finds the repeat.
    monkeypatch.setattr(apply, "PYTHON_READS_UP_TO", -1)
    await feed("leave", "leave_balances", "leave_*.csv")
    imp = await send(
        "leave_1.csv",
        leave_csv(
            f"{first_cell},annual,10,2026-11-01",
            "E2,sick,5.5,2026-11-01",
            "E1,annual,4,2026-11-01",
            "E3,annual,2,2026-11-02",
        ),
    )
    assert (imp.status, imp.created, imp.errored) == ("completed_with_errors", 3, 1)
    assert [(r.row_number, r.record_key, r.action, r.error) for r in await records(db, imp)] == [
        (2, "E1/annual", "created", None),
        (3, "E2/sick", "created", None),
        (4, "E1/annual", "errored", "duplicate key E1/annual (first on row 2)"),
        (5, "E3/annual", "created", None),
    ]
    async with db.session() as s:
        stored = {(b.employee_id, b.leave_type): b.balance_hours for b in await s.scalars(
            select(LeaveBalance))}  # fmt: skip
    assert stored == {
        ("E1", "annual"): Decimal("10.00"),
        ("E2", "sick"): Decimal("5.50"),
        ("E3", "annual"): Decimal("2.00"),
    }
