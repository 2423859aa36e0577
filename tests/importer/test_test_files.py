"""Test files: checked as a live file would be, previewed in the audit, never applied.

And result files: one per processed file, named so that none replaces another.
"""

from __future__ import annotations

import csv
import re
from decimal import Decimal

from sqlalchemy import select

from courier.common.db.models import Feed, Import, LeaveBalance
from courier.common.events import FILE_REJECTED, IMPORT_COMPLETED
from courier.common.uow import UnitOfWork
from courier.importer.apply import handle
from courier.importer.results import result_name
from tests.importer.conftest import records
from tests.support.fixtures_data import leave_csv
from tests.support.staged import staged

RESULT = re.compile(r"results/(test/)?(.+)\.(\d{8}T\d{6}Z)-([0-9a-f]{8})\.result\.csv\Z")


async def balances(db) -> dict[str, Decimal]:
    async with db.session() as s:
        return {
            r.employee_id: Decimal(r.balance_hours) for r in await s.scalars(select(LeaveBalance))
        }


async def result_lines(storage, imp: Import) -> list[str]:
    assert imp.result_key is not None
    return (await storage.read(imp.result_key)).decode().splitlines()


async def result_message(storage, imp: Import) -> str:
    """What the first row of the partner's result file says."""
    [status, _, _, message] = next(csv.reader([(await result_lines(storage, imp))[1]]))
    assert status == imp.status
    return message


async def test_a_test_file_is_checked_and_previewed_and_changes_no_domain_row(
    db, storage, feed, send
) -> None:
    await feed("leave", "leave_balances", "leave_*.csv")
    await send("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    test = await send(
        "test/leave_2.csv",
        leave_csv("E1,annual,6,2026-11-01", "E2,annual,4,2026-11-01", "E3,annual,x,2026-11-01"),
    )
    assert test.test is True
    assert (test.status, test.created, test.updated, test.errored) == (
        "completed_with_errors", 1, 1, 1,
    )  # fmt: skip
    # The preview: the records it would create, update and reject, as a live file's audit.
    assert [(r.record_key, r.action) for r in await records(db, test)] == [
        ("E1/annual", "updated"),
        ("E2/annual", "created"),
        ("E3/annual", "errored"),
    ]
    assert await balances(db) == {"E1": Decimal("8.00")}

    key = test.result_key
    assert key is not None and key.startswith("tenants/acme/outbound/results/test/leave_2.csv.")
    lines = await result_lines(storage, test)
    assert lines[1] == (
        'completed_with_errors,,,"TEST - nothing applied. As a live file it would give: '
        'created 1, updated 1, unchanged 0, deleted 0, errored 1"'
    )
    assert lines[2] == "errored,4,E3/annual,balance_hours: 'x' is not a number"

    [event] = [e for e in await staged(db, IMPORT_COMPLETED) if e.import_id == test.id]
    assert event.test is True and event.name == "test/leave_2.csv" and event.feed == "leave"


async def test_every_file_of_a_feed_marked_test_is_a_test_and_starts_no_live_period(
    db, storage, feed, send
) -> None:
    await feed("leave", "leave_balances", "leave_*.csv", test=True)
    imp = await send("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    assert (imp.test, imp.status, imp.created) == (True, "completed", 1)
    assert await balances(db) == {}
    async with db.session() as s:
        assert (await s.scalar(select(Feed.live_started_at))) is None
    assert "/outbound/results/test/leave_1.csv." in imp.result_key


async def test_the_same_test_file_twice_is_fine_and_never_makes_a_live_file_a_duplicate(
    db, storage, feed, send
) -> None:
    await feed("leave", "leave_balances", "leave_*.csv")
    data = leave_csv("E1,annual,8,2026-11-01")
    first = await send("test/leave_1.csv", data)
    second = await send("test/leave_1.csv", data)
    assert [first.status, second.status] == ["completed", "completed"]
    # Two uploads of one name: two results, neither replacing the other.
    assert first.result_key != second.result_key
    assert await storage.exists(first.result_key) and await storage.exists(second.result_key)

    live = await send("leave_1.csv", data)
    assert (live.test, live.status, live.created) == (False, "completed", 1)
    assert await balances(db) == {"E1": Decimal("8.00")}
    # ... and a test of content already applied is checked again, not called a duplicate.
    again = await send("test/leave_1.csv", data)
    assert (again.status, again.unchanged) == ("completed", 1)


async def test_a_rejected_test_file_says_why_and_that_nothing_was_applied(
    db, storage, feed, send
) -> None:
    await feed("leave", "leave_balances", "leave_*.csv")
    bad = leave_csv("E1,annual,8,2026-11-01", header="employee,leave_type,hours,as_of\n")
    imp = await send("test/leave_1.csv", bad)
    assert (imp.test, imp.status) == (True, "rejected")
    assert (await result_lines(storage, imp))[1].startswith(
        'rejected,,,"TEST - nothing applied. wrong header: missing columns:'
    )
    [event] = [e for e in await staged(db, FILE_REJECTED) if e.import_id == imp.id]
    assert event.test is True


async def test_a_test_file_is_never_held_for_approval(db, storage, feed, send) -> None:
    await feed("leave", "leave_balances", "leave_*.csv", hold_for_approval=True)
    imp = await send("test/leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    assert (imp.status, imp.created) == ("completed", 1)
    assert await balances(db) == {}


async def test_a_test_full_sync_tells_the_partner_the_live_file_would_be_held(
    db, storage, feed, send
) -> None:
    guard = {"max_delete_share": 0.5, "min_records": 2}
    await feed("leave", "leave_balances", "leave_*.csv", mode="full_sync", full_sync_guard=guard)
    rows = [f"E{i},annual,8,2026-11-01" for i in range(1, 5)]
    await send("leave_1.csv", leave_csv(*rows))
    imp = await send("test/leave_2.csv", leave_csv(rows[0]))
    assert (imp.status, imp.deleted) == ("completed", 3)
    assert (
        "would be held for approval (full sync would delete 3 of 4"
        in (await result_lines(storage, imp))[1]
    )
    assert len(await balances(db)) == 4


async def test_an_unrecognised_name_is_told_the_patterns_this_accounts_feeds_take(
    db, storage, feed, send
) -> None:
    refused = await send("leave.xlsx", b"x")
    assert (await result_lines(storage, refused))[1] == (
        "rejected,,,unrecognised file name: this account has no feed that takes files yet"
    )
    await feed("leave", "leave_balances", "leave_{yyyyMMdd}.csv")
    await feed("staff", "staff", "staff_*.csv")
    for name in ("leave.xlsx", "test/leave.xlsx"):
        imp = await send(name, b"x")
        assert (imp.status, imp.test, imp.error) == (
            "rejected", name.startswith("test/"), "unrecognised file name",
        )  # fmt: skip
        expected = "unrecognised file name: expected one of leave_{yyyyMMdd}.csv, staff_*.csv"
        test_note = "TEST - nothing applied. " if imp.test else ""
        assert await result_message(storage, imp) == test_note + expected


async def test_a_result_name_carries_arrival_time_and_file_id_and_a_redelivery_keeps_it(
    db, storage, feed, drop
) -> None:
    await feed("leave", "leave_balances", "leave_*.csv")
    event = await drop("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    [imp] = await handle(event, UnitOfWork(db, storage))
    assert imp.result_key == f"tenants/acme/outbound/{result_name(imp)}"
    match = RESULT.search(imp.result_key)
    assert match is not None and match.group(1) is None
    assert match.group(2) == "leave_1.csv"
    assert match.group(3) == event.occurred_at.strftime("%Y%m%dT%H%M%SZ")
    assert match.group(4) == event.file_id.hex[:8]
    # Delivered again: nothing new, and the one result stays the only one.
    assert await handle(event, UnitOfWork(db, storage)) == []
    assert [o.key for o in await storage.list("tenants/acme/outbound/results")] == [imp.result_key]
