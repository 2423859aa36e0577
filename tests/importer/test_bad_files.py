"""Every kind of broken file gets its own, exact answer; readable oddities are accepted."""

from __future__ import annotations

import codecs
import tracemalloc

import pytest
from sqlalchemy import select

from courier.common.db.models import LeaveBalance
from tests.importer.conftest import records
from tests.support.fixtures_data import LEAVE_HEADER, leave_csv

HEADER = LEAVE_HEADER.encode()


@pytest.fixture
async def leave(feed) -> None:
    await feed("leave", "leave_balances", "leave_*.csv")


async def leave_types(db) -> list[str]:
    async with db.session() as s:
        return sorted(await s.scalars(select(LeaveBalance.leave_type)))


REJECTED = {
    "empty": (b"", "empty file: no header and no rows"),
    "blank lines only": (b"\r\n\n  \n", "empty file: no header and no rows"),
    "header only": (HEADER, "header only: the file has no rows"),
    "unterminated quote": (
        HEADER + b'E1,annual,1,2026-11-01\nE2,"annual,2,2026-11-01\nE3,sick,1,2026-11-01\n',
        "row 3: unterminated quoted field (the quote is never closed)",
    ),
    "wrong delimiter": (
        b"employee_id;leave_type;balance_hours;as_of\nE1;annual;1;2026-11-01\n",
        "wrong delimiter: the header is separated by ';', the feed expects ','",
    ),
    "Windows-1252 sent as UTF-8": (
        HEADER + "E1,congé,1,2026-11-01\n".encode("cp1252"),
        f"not valid UTF-8: byte 0xe9 at offset {len(HEADER) + 7}",
    ),
    "NUL bytes": (
        HEADER + b"E1,annual,1,2026-11-01\nE2,an\x00nual,1,2026-11-01\n",
        f"NUL byte at offset {len(HEADER) + 23 + 5}: not a text file",
    ),
    "duplicated columns": (
        b"employee_id,leave_type,balance_hours,as_of,as_of\nE1,annual,1,2026-11-01,2026-11-01\n",
        "wrong header: duplicated columns: as_of",
    ),
}


@pytest.mark.parametrize("case", list(REJECTED))
async def test_unreadable_file_is_rejected_with_its_reason(db, leave, send, case) -> None:
    data, reason = REJECTED[case]
    imp = await send("leave_bad.csv", data)
    assert (imp.status, imp.error) == ("rejected", reason)
    assert await leave_types(db) == []


async def test_utf8_with_and_without_bom_are_both_read(db, leave, send) -> None:
    plain = await send("leave_1.csv", leave_csv("E1,congé,1,2026-11-01"))
    bom = await send("leave_2.csv", codecs.BOM_UTF8 + leave_csv("E2,congé,1,2026-11-01"))
    assert (plain.status, bom.status) == ("completed", "completed")
    assert bom.details["encoding"] == "UTF-8"
    assert await leave_types(db) == ["congé", "congé"]


async def test_windows_1252_feed_reads_accented_names(db, feed, send) -> None:
    await feed("leave", "leave_balances", "leave_*.csv", encoding="windows-1252")
    imp = await send("leave_1.csv", leave_csv("E1,congé €,1,2026-11-01").decode().encode("cp1252"))
    assert imp.status == "completed"
    assert await leave_types(db) == ["congé €"]


async def test_utf16_needs_its_byte_order_mark(db, feed, send) -> None:
    await feed("leave", "leave_balances", "leave_*.csv", encoding="utf-16")
    text = leave_csv("E1,congé,1,2026-11-01").decode()
    with_bom = await send("leave_1.csv", text.encode("utf-16"))
    without = await send("leave_2.csv", text.encode("utf-16-le"))
    assert (with_bom.status, with_bom.details["encoding"]) == ("completed", "UTF-16")
    assert without.status == "rejected"
    assert without.error == "UTF-16 file without a byte-order mark: the byte order cannot be known"
    assert await leave_types(db) == ["congé"]


async def test_mixed_line_endings_and_quoted_newlines_are_records_not_lines(
    db, leave, send
) -> None:
    data = (
        HEADER + b'E1,annual,1,2026-11-01\r\nE2,"two\r\nlines",2,2026-11-01\rE3,sick,3,2026-11-01\n'
    )
    imp = await send("leave_1.csv", data)
    assert (imp.status, imp.created) == ("completed", 3)
    assert await leave_types(db) == ["annual", "sick", "two\r\nlines"]
    assert [r.row_number for r in await records(db, imp)] == [2, 3, 4]


async def test_duplicate_key_in_a_file_errors_the_later_row(db, leave, send) -> None:
    imp = await send(
        "leave_1.csv",
        leave_csv("E1,annual,1,2026-11-01", "E2,annual,1,2026-11-01", "E1,annual,5,2026-11-01"),
    )
    assert (imp.status, imp.created, imp.errored) == ("completed_with_errors", 2, 1)
    errored = [r for r in await records(db, imp) if r.action == "errored"]
    assert [(r.row_number, r.record_key, r.error) for r in errored] == [
        (4, "E1/annual", "duplicate key E1/annual (first on row 2)")
    ]


async def test_bad_dates_and_numbers_are_errored_rows_with_the_cell_named(db, leave, send) -> None:
    imp = await send(
        "leave_1.csv",
        leave_csv(
            "E1,annual,forty,2026-11-01",
            "E2,annual,1.234,2026-11-01",
            "E3,annual,1,01/11/2026",
            "E4,annual,1,2026-02-30",
            "E5,annual,NaN,2026-11-01",
            "E6,annual,1",
            ",annual,1,2026-11-01",
            "E7,annual,-2.5,2026-11-01",
        ),
    )
    assert (imp.status, imp.created, imp.errored) == ("completed_with_errors", 1, 7)
    errors = {r.row_number: r.error for r in await records(db, imp) if r.error}
    assert errors == {
        2: "balance_hours: 'forty' is not a number",
        3: "balance_hours: '1.234' has more than 2 decimal places",
        4: "as_of: '01/11/2026' is not a date (expected YYYY-MM-DD)",
        5: "as_of: '2026-02-30' is not a date (expected YYYY-MM-DD)",
        6: "balance_hours: 'NaN' is not a number",
        7: "expected 4 values, found 3",
        8: "employee_id: required",
    }


async def test_formula_like_values_are_stored_verbatim(db, leave, send) -> None:
    imp = await send(
        "leave_1.csv",
        leave_csv(
            'E1,"=HYPERLINK(""http://x"")",1,2026-11-01', "E2,+cmd|' /C calc'!A0,-8,2026-11-01"
        ),
    )
    assert (imp.status, imp.created) == ("completed", 2)
    assert await leave_types(db) == ["+cmd|' /C calc'!A0", '=HYPERLINK("http://x")']


async def test_a_50_mb_line_is_refused_without_reading_it_whole(db, leave, drop, storage) -> None:
    from courier.common.uow import UnitOfWork
    from courier.importer.apply import handle
    from tests.importer.conftest import import_of

    event = await drop("leave_huge.csv", HEADER + b"E1,annual," + b"9" * (50 * 1024 * 1024) + b"\n")
    tracemalloc.start()
    try:
        await handle(event, UnitOfWork(db, storage))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    imp = await import_of(db, event.file_id)
    assert imp.status == "rejected"
    assert imp.error == "line 2 is longer than 1000000 characters (the feed's max_line_chars)"
    assert peak < 20 * 1024 * 1024


async def test_file_over_the_feed_size_limit_is_rejected_unread(db, feed, send) -> None:
    await feed("leave", "leave_balances", "leave_*.csv", max_size_mb=0.001)
    imp = await send("leave_1.csv", leave_csv(*["E1,annual,1,2026-11-01"] * 100))
    assert imp.status == "rejected"
    assert imp.error == f"file too large: {imp.size} bytes, the feed takes at most 0.001 MB"
