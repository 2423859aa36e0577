"""Staff, roles and locations with checked references; full sync, its guard, reject_file."""

from __future__ import annotations

from sqlalchemy import select

from courier.common.db.models import LeaveBalance
from courier.common.db.models_domain import Location, Role, Staff
from tests.importer.conftest import records
from tests.support.fixtures_data import leave_csv


def csv(*lines: str) -> bytes:
    return "".join(line + "\n" for line in lines).encode()


async def rows_of(db, model, *cols) -> list[tuple]:
    async with db.session() as s:
        return [tuple(r) for r in await s.execute(select(*cols).order_by(*cols))]


async def test_location_may_name_a_parent_created_earlier_in_the_same_file(db, feed, send) -> None:
    await feed("sites", "locations", "locations_*.csv")
    imp = await send(
        "locations_1.csv",
        csv(
            "code,name,timezone,parent_code",
            "UK,United Kingdom,Europe/London,",
            "LON,London,Europe/London,UK",
            "MAN,Manchester,,NORTH",
        ),
    )
    assert (imp.status, imp.created, imp.errored) == ("completed_with_errors", 2, 1)
    [err] = [r for r in await records(db, imp) if r.error]
    assert (err.row_number, err.error) == (4, "parent_code: unknown location 'NORTH'")
    assert await rows_of(db, Location, Location.code, Location.parent_code) == [
        ("LON", "UK"),
        ("UK", None),
    ]


async def test_staff_must_name_known_locations_and_roles(db, feed, send) -> None:
    await feed("sites", "locations", "locations_*.csv")
    await feed("roles", "roles", "roles_*.csv")
    await feed("people", "staff", "staff_*.csv", columns={"employee_id": "Employee No"})
    await send("locations_1.csv", csv("code,name", "LON,London"))
    roles = await send("roles_1.csv", csv("code,name", 'NURSE,"Nurse, night"'))
    assert roles.created == 1
    header = (
        "Employee No,first_name,last_name,email,start_date,end_date,status,location_code,role_code"
    )
    imp = await send(
        "staff_1.csv",
        csv(
            header,
            "S1,Ada,Lovelace,ada@example.com,2026-01-05,,active,LON,NURSE",
            "S2,Bob,Byte,bob@example.com,2026-01-05,,active,PAR,NURSE",
            "S3,Cy,Crane,not-an-email,2026-01-05,,retired,LON,",
        ),
    )
    assert (imp.status, imp.created, imp.errored) == ("completed_with_errors", 1, 2)
    errors = {r.row_number: r.error for r in await records(db, imp) if r.error}
    assert errors == {
        3: "location_code: unknown location 'PAR'",
        4: "email: 'not-an-email' is not an e-mail address; "
        "status: 'retired' is not one of active, inactive, terminated",
    }
    assert await rows_of(db, Staff, Staff.employee_id, Staff.location_code, Staff.role_code) == [
        ("S1", "LON", "NURSE")
    ]
    assert await rows_of(db, Role, Role.code, Role.name) == [("NURSE", "Nurse, night")]


async def test_mapping_formats_and_decimal_comma(db, feed, send) -> None:
    await feed(
        "leave",
        "leave_balances",
        "leave_*.csv",
        dialect={"delimiter": ";"},
        columns={"employee_id": "Personnel", "balance_hours": "Hours", "as_of": "Date"},
        formats={"as_of": "%d.%m.%Y"},
        decimal_separator=",",
    )
    imp = await send(
        "leave_1.csv", csv("Personnel;leave_type;Hours;Date", "E1;annual;7,5;01.11.2026")
    )
    assert (imp.status, imp.created) == ("completed", 1)
    [rec] = await records(db, imp)
    assert rec.changes == {"balance_hours": [None, "7.50"], "as_of": [None, "2026-11-01"]}


async def test_full_sync_deletes_what_the_file_no_longer_has_within_its_feed(
    db, feed, send
) -> None:
    await feed("leave", "leave_balances", "leave_*.csv", mode="full_sync")
    await feed("other", "leave_balances", "other_*.csv")
    await send("other_1.csv", leave_csv("X9,annual,1,2026-11-01"))
    await send("leave_1.csv", leave_csv("E1,annual,1,2026-11-01", "E2,annual,2,2026-11-01"))
    imp = await send("leave_2.csv", leave_csv("E1,annual,1,2026-11-01", "E3,sick,bad,2026-11-01"))
    assert (imp.status, imp.unchanged, imp.deleted, imp.errored) == (
        "completed_with_errors", 1, 1, 1,
    )  # fmt: skip
    deleted = [r for r in await records(db, imp) if r.action == "deleted"]
    assert [(r.record_key, r.changes) for r in deleted] == [
        ("E2/annual", {"balance_hours": ["2.00", None], "as_of": ["2026-11-01", None]})
    ]
    # The other feed's record is out of this feed's scope.
    assert await rows_of(db, LeaveBalance, LeaveBalance.employee_id) == [("E1",), ("X9",)]


async def test_full_sync_guard_holds_a_mass_deletion_for_approval(db, feed, send) -> None:
    await feed(
        "leave",
        "leave_balances",
        "leave_*.csv",
        mode="full_sync",
        full_sync_guard={"max_delete_share": 0.5, "min_records": 4},
    )
    await send("leave_1.csv", leave_csv(*(f"E{i},annual,1,2026-11-01" for i in range(10))))
    imp = await send("leave_2.csv", leave_csv("E1,annual,1,2026-11-01"))
    assert (imp.status, imp.deleted) == ("awaiting_approval", 9)
    assert imp.details["held"] == (
        "full sync would delete 9 of 10 records (more than 50%); held for approval"
    )
    assert len(await rows_of(db, LeaveBalance, LeaveBalance.employee_id)) == 10


async def test_reject_file_applies_nothing_when_a_row_errs(db, feed, send) -> None:
    await feed("leave", "leave_balances", "leave_*.csv", on_row_error="reject_file")
    imp = await send("leave_1.csv", leave_csv("E1,annual,1,2026-11-01", "E2,annual,x,2026-11-01"))
    assert (imp.status, imp.error, imp.created) == (
        "rejected",
        "1 row(s) with errors and the feed's on_row_error is reject_file",
        0,
    )
    assert [(r.row_number, r.action) for r in await records(db, imp)] == [(3, "errored")]
    assert await rows_of(db, LeaveBalance, LeaveBalance.employee_id) == []


async def test_roles_full_sync_renames_and_removes(db, feed, send) -> None:
    await feed("roles", "roles", "roles_*.csv", mode="full_sync")
    await send("roles_1.csv", csv("code,name", "NURSE,Nurse", "CHEF,Chef", "PORTER,Porter"))
    imp = await send("roles_2.csv", csv("code,name", "NURSE,Registered nurse", "CHEF,Chef"))
    assert (imp.updated, imp.unchanged, imp.deleted) == (1, 1, 1)
    by_action = {r.action: r for r in await records(db, imp)}
    assert by_action["updated"].changes == {"name": ["Nurse", "Registered nurse"]}
    assert (by_action["deleted"].record_key, by_action["deleted"].row_number) == ("PORTER", 0)
    assert await rows_of(db, Role, Role.code, Role.name) == [
        ("CHEF", "Chef"),
        ("NURSE", "Registered nurse"),
    ]
