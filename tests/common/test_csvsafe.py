"""Formula defusing: one table, held against the Python rule and its SQL twin."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import Text, literal, select

from courier.common.csvsafe import defuse, defuse_sql
from courier.common.db.engine import Database

# (cell, what a spreadsheet is given)
DEFUSING: list[tuple[object, str]] = [
    ("=1+1", "'=1+1"),
    ("=", "'="),
    ("@SUM(A1)", "'@SUM(A1)"),
    ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
    ("+44 20 7946 0958", "'+44 20 7946 0958"),  # a phone number is text
    ("+44", "+44"),
    ("-1", "-1"),
    ("-1.5", "-1.5"),
    ("-1,5", "-1,5"),  # a decimal comma
    ("-12.50", "-12.50"),
    ("-.5", "-.5"),
    ("+1.", "+1."),
    ("-1.234,5", "'-1.234,5"),  # thousands separators make it text
    ("-1e5", "'-1e5"),
    ("-1\n", "'-1\n"),  # a line break after the number makes it text
    ("-\u0663", "'-\u0663"),  # only ASCII digits make a number
    ("-", "'-"),
    ("+", "'+"),
    ("\t=1", "'\t=1"),
    ("\r=1", "'\r=1"),
    ("\t1", "'\t1"),
    (" =1", " =1"),  # no trigger first
    ("1+1", "1+1"),
    ("Ben-Ali", "Ben-Ali"),
    ("", ""),
    (None, ""),
    (-5, "-5"),
    (Decimal("-1.5"), "-1.5"),
]
TEXT = [(cell, out) for cell, out in DEFUSING if isinstance(cell, str)]


@pytest.mark.parametrize(("cell", "expected"), DEFUSING)
def test_defuse(cell: object, expected: str) -> None:
    assert defuse(cell) == expected


async def test_sql_defuses_as_python_does(db: Database, database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the SQL rule serves PostgreSQL's COPY path")
    async with db.session() as s:
        for cell, expected in TEXT:
            got = await s.scalar(select(defuse_sql(literal(cell, Text()))))
            assert got == expected, repr(cell)
        assert await s.scalar(select(defuse_sql(literal(None, Text())))) is None
