"""A small file (imported in one statement on PostgreSQL) gets exactly the answer the bulk
path gives: the same audit, counts, result and balances."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from courier.cli import provision
from courier.common.db.engine import is_sqlite
from courier.common.db.models import LeaveBalance, Tenant
from courier.importer import apply
from courier.importer.spec import FeedSpec
from tests.importer.conftest import records
from tests.support.fixtures_data import leave_csv

BEFORE = ("E1,annual,10,2026-11-01", "E2,sick,5,2026-11-01", "E3,annual,7,2026-11-01")
ROWS = (
    "E1,annual,12.5,2026-11-01",  # updated
    "E2,sick,5,2026-11-01",  # unchanged
    "E4,annual,3,2026-11-01",  # created
    " E5 , toil , 1 , 2026-11-02 ",  # created, trimmed
    "E6,annual,x,2026-11-01",  # errored
    "E4,annual,9,2026-11-01",  # repeated key
    ",annual,1,2026-11-01",  # no key
    "E7,annual,,2026-11-01",  # required
    "E8,parental,1.234,2026-11-01",  # too many decimal places
)


@pytest.fixture
def postgres_only(db) -> None:  # type: ignore[no-untyped-def]
    if is_sqlite(db.url):
        pytest.skip("SQLite has one path (row-wise)")


async def _tenant_with_feed(db, slug: str, **options: object) -> Tenant:  # type: ignore[no-untyped-def]
    tenant = await provision.ensure_tenant(db, slug, slug)
    spec = FeedSpec.model_validate(
        {"name": "leave", "kind": "leave_balances", "pattern": "leave_*.csv", **options}
    )
    await provision.upsert_feed(
        db, tenant, "leave", "leave_balances", "leave_*.csv", spec.model_dump(mode="json")
    )
    return tenant


async def _balances(db, tenant: Tenant) -> dict[tuple[str, str], tuple]:  # type: ignore[no-untyped-def]
    async with db.session() as s:
        rows = await s.scalars(select(LeaveBalance).where(LeaveBalance.tenant_id == tenant.id))
        return {(r.employee_id, r.leave_type): (r.balance_hours, r.as_of) for r in rows}


def _audit(recs: list) -> list[tuple]:
    return [(r.row_number, r.record_key, r.action, r.changes, r.error) for r in recs]


async def test_a_small_file_gets_the_bulk_paths_audit_and_balances(
    db, send, storage, postgres_only, monkeypatch
) -> None:
    small_tenant = await _tenant_with_feed(db, "small")
    bulk_tenant = await _tenant_with_feed(db, "bulk")
    for tenant in (small_tenant, bulk_tenant):
        await send("leave_0.csv", leave_csv(*BEFORE), to=tenant)

    small = await send("leave_1.csv", leave_csv(*ROWS), to=small_tenant)
    monkeypatch.setattr(apply, "PYTHON_READS_UP_TO", -1)
    bulk = await send("leave_1.csv", leave_csv(*ROWS), to=bulk_tenant)

    assert _audit(await records(db, small)) == _audit(await records(db, bulk))
    counts = ("status", "created", "updated", "unchanged", "deleted", "errored")
    assert [getattr(small, c) for c in counts] == [getattr(bulk, c) for c in counts]
    assert (small.status, small.created, small.updated, small.errored) == (
        "completed_with_errors", 2, 1, 5,
    )  # fmt: skip
    assert await _balances(db, small_tenant) == await _balances(db, bulk_tenant)
    errors = [r.error for r in await records(db, small) if r.action == "errored"]
    assert "duplicate key E4/annual (first on row 4)" in errors
    result = b"".join([c async for c in storage.get(small.result_key)]).decode()
    assert result.count("\r\nerrored,") == 5


async def test_a_held_small_file_changes_nothing_and_shows_the_same_change_set(
    db, send, postgres_only, monkeypatch
) -> None:
    small_tenant = await _tenant_with_feed(db, "small", hold_for_approval=True)
    bulk_tenant = await _tenant_with_feed(db, "bulk", hold_for_approval=True)
    small = await send("leave_1.csv", leave_csv(*ROWS), to=small_tenant)
    monkeypatch.setattr(apply, "PYTHON_READS_UP_TO", -1)
    bulk = await send("leave_1.csv", leave_csv(*ROWS), to=bulk_tenant)

    assert small.status == bulk.status == "awaiting_approval"
    assert _audit(await records(db, small)) == _audit(await records(db, bulk))
    assert await _balances(db, small_tenant) == {}


async def test_a_small_file_with_errors_on_a_reject_file_feed_is_rejected_whole(
    db, send, postgres_only
) -> None:
    tenant = await _tenant_with_feed(db, "strict", on_row_error="reject_file")
    imp = await send("leave_1.csv", leave_csv(*ROWS[:4], "E4,annual,9,2026-11-01"), to=tenant)

    assert imp.status == "rejected"
    assert "reject_file" in (imp.error or "")
    assert await _balances(db, tenant) == {}
    [error] = [r.error for r in await records(db, imp) if r.action == "errored"]
    assert error == "duplicate key E4/annual (first on row 4)"
