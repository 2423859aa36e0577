"""Custom formats PostgreSQL renders must be byte for byte what Python's `strftime` and
`format` write, for any pattern a spec can hold and any value a cell can hold.

Formats and values are drawn by hypothesis (a fixed, derandomised set, so a failure
reproduces), then each format is rendered by PostgreSQL over all its values in one query.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Date, DateTime, Integer, Numeric, cast, column, select, values

from courier.common.db.engine import Database
from courier.exporter.sqlformat import Render, Stored, number_sql, strftime_sql

CASES = 150

DIRECTIVES = ["%Y", "%y", "%m", "%d", "%H", "%I", "%M", "%S", "%f", "%j", "%p", "%P", "%a",
              "%A", "%b", "%h", "%B", "%u", "%V", "%G", "%g", "%e", "%k", "%l", "%w", "%U",
              "%W", "%D", "%F", "%T", "%R", "%r", "%c", "%x", "%X", "%n", "%t", "%%", "%-d",
              "%-m", "%-H", "%-I", "%-M", "%-S", "%-j", "%-y"]  # fmt: skip
LITERALS = [" ", "/", "-", ":", ".", ",", "T", "at", "Day", "MM", "YYYY", "HH24", '"', "\\",
            "'", "é", "\u2013", "FM", "%%Y", "100%%"]  # fmt: skip
# Where calendars and clocks turn: year ends, leap days, ISO weeks of a neighbouring year,
# midnight and noon, the first years PostgreSQL and Python both write.
MOMENTS = [
    datetime(2026, 1, 1, 0, 0),
    datetime(2026, 12, 31, 23, 59, 59, 999999),
    datetime(2024, 2, 29, 12, 0, 0, 1),
    datetime(2021, 1, 3, 11, 59, 59),
    datetime(2020, 12, 31, 12, 30),
    datetime(2027, 1, 4, 13, 5, 7, 120000),
    datetime(2005, 6, 15, 9, 9, 9),
    datetime(1000, 1, 1, 0, 0),
    datetime(9999, 12, 30, 23, 59, 59),  # (asyncpg sends 9999-12-31 as infinity)
]


def _cases(strategy: Any) -> list[Any]:
    drawn: list[Any] = []

    @settings(max_examples=CASES, derandomize=True, database=None, deadline=None)
    @given(strategy)
    def collect(case: Any) -> None:
        drawn.append(case)

    collect()
    return drawn


patterns = st.lists(st.sampled_from(DIRECTIVES + LITERALS), min_size=1, max_size=6).map("".join)
moments = st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 30))


async def _rendered(db: Database, render: Render, type_: Any, items: list[Any]) -> list[str]:
    table = values(column("i", Integer), column("v", type_), name="t").data(list(enumerate(items)))
    async with db.session() as s:
        rows = await s.execute(select(table.c.i, render(table.c.v)).order_by(table.c.i))
        return [text for _, text in rows]


async def _compare(
    db: Database, cases: list[tuple[str, list[Any]]], sql: Callable[[str], Render | None],
    type_: Any, python: Callable[[Any, str], str],
) -> int:  # fmt: skip
    """Every format SQL renders, compared with Python over its values; how many were."""
    rendered = 0
    for fmt, items in cases:
        render = sql(fmt)
        if render is None:
            continue
        rendered += 1
        got = await _rendered(db, render, type_, items)
        assert got == [python(v, fmt) for v in items], fmt
    return rendered


@pytest.fixture
def postgresql_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the SQL rendering is PostgreSQL's")


async def test_date_and_time_patterns_render_in_sql_as_strftime_does(
    db: Database, postgresql_only: None
) -> None:
    cases = _cases(st.tuples(patterns, st.lists(moments, max_size=6)))
    cases = [(fmt, MOMENTS + drawn) for fmt, drawn in cases]
    stamps = await _compare(db, cases, strftime_sql, DateTime(), datetime.strftime)
    days = [(fmt, [m.date() for m in items]) for fmt, items in cases]
    dates = await _compare(db, days, _on_date, Date(), date.strftime)
    assert stamps == dates == len(cases)  # every directive drawn renders in SQL


def _on_date(fmt: str) -> Render | None:
    """As the exporter renders a date: as a timestamp, whatever the session's zone."""
    render = strftime_sql(fmt)
    return None if render is None else lambda v: render(cast(v, DateTime()))


def test_patterns_without_an_exact_sql_equivalent_stay_in_python() -> None:
    for fmt in ["%z", "%Z", "%s", "%C", "%_d", "%^a", "%-f", "%Q", "100%", "%Ey", "%10Y"]:
        assert strftime_sql(fmt) is None, fmt
    assert strftime_sql("%d %b %Y") is not None and strftime_sql("%A %-d %B") is not None


FILLS = ["", " ", "*", "0", "x", "'", "%", ",", "é"]
number_specs = st.builds(
    lambda fill, align, sign, z, zero, width, group, precision, type_: (
        (fill + align if align else "") + sign + z + zero + width + group + precision + type_
    ),
    st.sampled_from(FILLS),
    st.sampled_from(["", "<", ">", "=", "^"]),
    st.sampled_from(["", "+", "-", " "]),
    st.sampled_from(["", "z"]),
    st.sampled_from(["", "0"]),
    st.sampled_from(["", "1", "5", "8", "10", "13"]),
    st.sampled_from(["", ",", "_"]),
    st.sampled_from(["", ".0", ".1", ".2", ".3", ".6"]),
    st.sampled_from(["f", "f", "F", "%", "", "d"]),
)
# Numeric(12, 2) values: halves to round either way, negatives that round to zero.
decimals = st.decimals(min_value=-9999999999, max_value=9999999999, places=2)
EDGE_DECIMALS = ["0", "0.05", "-0.05", "-0.04", "0.5", "1.5", "2.5", "-2.5", "7.25", "-7.35",
                 "999.99", "1000", "-1234567.89", "9999999999.99"]  # fmt: skip
EDGE_INTEGERS = [0, 1, -1, 7, -30, 999, 1000, -1000, 123456, 2147483647, -2147483648]


async def test_number_formats_render_in_sql_as_format_does(
    db: Database, postgresql_only: None
) -> None:
    edges = [Decimal(text) for text in EDGE_DECIMALS]
    cases = [(fmt, edges + drawn) for fmt, drawn in
             _cases(st.tuples(number_specs, st.lists(decimals, max_size=6)))]  # fmt: skip
    in_sql = await _compare(
        db, cases, lambda f: number_sql(f, integer=False), Numeric(12, 2), format
    )
    # Knowing the column's scale, values whose digits are all kept are not rounded.
    stored = Stored(scale=2, whole_digits=10)
    in_column = await _compare(
        db, cases, lambda f: number_sql(f, False, stored), Numeric(12, 2), format
    )
    assert in_column == in_sql
    whole = [(fmt, EDGE_INTEGERS + drawn) for fmt, drawn in
             _cases(st.tuples(number_specs, st.lists(st.integers(-(2**31), 2**31 - 1),
                                                     max_size=6)))]  # fmt: skip
    in_sql_whole = await _compare(
        db, whole, lambda f: number_sql(f, integer=True), Integer(), format
    )
    # Many drawn specs are valid and rendered in SQL (Python refuses most others).
    assert in_sql > len(cases) // 8 and in_sql_whole > len(whole) // 4


def test_number_formats_sql_cannot_render_alike_stay_in_python() -> None:
    for fmt in [".2e", ".3g", "#.2f", ".2n", "x", "c", "", "d", ".2", "f", "%"]:
        assert number_sql(fmt, integer=False) is None, fmt
    for fmt in [".2e", "b", "#x", ".2"]:
        assert number_sql(fmt, integer=True) is None, fmt
    for fmt in [",.2f", "08.2f", "+.1f", "012,.2f", ">10.2%", "z.2f"]:
        assert number_sql(fmt, integer=False) is not None, fmt
    for fmt in [",d", "05d", ",", "08.2f", "", "+d"]:
        assert number_sql(fmt, integer=True) is not None, fmt
