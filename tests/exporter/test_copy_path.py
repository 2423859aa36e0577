"""On PostgreSQL a plainly formatted export is PostgreSQL's own COPY output; it must be
byte for byte what the csv writer makes, whatever the cells hold."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import DateTime, Numeric, func, literal, select

from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_exports import Timesheet
from courier.common.storage import Storage
from courier.exporter import build
from courier.exporter.build import _CrLf, _EndMarker, build_file, copy_eligible
from courier.exporter.sqlformat import number_sql, strftime_sql
from tests.common.test_csvsafe import TEXT as DEFUSING_TEXT
from tests.exporter.conftest import DAY, sheet, spec_model

AWKWARD = [
    "Amira Ahmed",
    "Ahmed, Amira",  # the delimiter
    'Amira "Mimi" Ahmed',  # quotes
    "Amira\nAhmed",  # a line break inside a cell
    "Amira\r\nAhmed",
    "",  # empty, not NULL
    "  Ben  ",  # spaces kept
    "Chloé Dubois \u2013 Zoë",  # not ASCII
    '=HYPERLINK("http://evil","x")',  # a formula, defused
    "-5",
    "\\.",  # COPY's end-of-data marker as a value
    "a;b\tc|d",
    *(cell for cell, _ in DEFUSING_TEXT if cell),  # every case of the defusing rule
]


@pytest.fixture
async def awkward(db: Database, tenant: Tenant) -> None:
    async with db.transaction() as s:
        for i, name in enumerate(AWKWARD):
            s.add(
                sheet(
                    tenant,
                    f"E{i:02d}",
                    name,
                    cost_centre=name or "CC",
                    location=name,
                    hours=Decimal("7.25") + i,
                )
            )


SPECS: dict[str, dict[str, Any]] = {
    "default columns": {},
    "every field, semicolons, odd headers": {
        "delimiter": ";",
        "columns": [
            {"field": "employee_id", "header": 'Emp "ID"; no.'},
            {"field": "employee_name", "header": "Name, full"},
            {"field": "work_date"},
            {"field": "start"},
            {"field": "end"},
            {"field": "break_minutes"},
            {"field": "hours"},
            {"field": "location"},
            {"field": "cost_centre"},
            {"field": "approval"},
        ],
    },
    "date patterns rendered in SQL": {
        "columns": [
            {"field": "employee_name"},
            {"field": "work_date", "format": "%d/%m/%Y"},
            {"field": "start", "format": "%Y-%m-%dT%H:%M:%S"},
            {"field": "end", "format": "%H%M"},
            {"field": "hours", "format": ".1f"},
            {"field": "break_minutes", "format": ".2f"},
        ],
    },
    "tabs, no header, formulas kept": {
        "delimiter": "\t",
        "header": False,
        "neutralise_formulas": False,
    },
    "month and day names, 12-hour clock": {
        "columns": [
            {"field": "employee_name"},
            {"field": "work_date", "format": "%a %e %b %Y (%A %-d %B, day %j, week %U/%W/%V)"},
            {"field": "start", "format": "%I:%M %p, %c"},
            {"field": "end", "format": "%-I.%M%P"},
        ],
    },
    "grouped, padded and signed numbers": {
        "delimiter": ";",
        "columns": [
            {"field": "employee_name"},
            {"field": "hours", "format": ",.2f"},
            {"field": "break_minutes", "format": "08.2f"},
            {"field": "hours", "header": "h", "format": "+012,.1f"},
            {"field": "break_minutes", "header": "b", "format": "*^9,d"},
            {"field": "hours", "header": "%", "format": ".1%"},
        ],
    },
    "formats only Python renders, rendered once per value": {
        "columns": [
            {"field": "employee_name"},
            {"field": "start", "format": "%Y-%m-%dT%H:%M:%S%z (%Z)"},
            {"field": "work_date", "format": "%x%z%Z"},
            {"field": "hours", "format": ".3e"},
            {"field": "break_minutes", "format": "#x"},
            {"field": "hours", "header": "g", "format": "g"},
        ],
    },
    "one column": {"columns": [{"field": "employee_name"}]},
    "one column only Python renders": {"columns": [{"field": "end", "format": "%Z"}]},
    "one column, no header": {"columns": [{"field": "location"}], "header": False},
}


@pytest.mark.parametrize("name", SPECS)
async def test_copy_output_equals_the_csv_writers(
    db: Database, database_url: str, storage: Storage, tenant: Tenant, awkward: None, name: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the COPY path is PostgreSQL's")
    spec = spec_model(**SPECS[name])
    assert copy_eligible(spec, "postgresql")
    by_copy = await build_file(db, storage, spec, tenant.id, DAY, DAY, "copy.csv")
    by_python = await build_file(
        db, storage, spec, tenant.id, DAY, DAY, "python.csv", use_copy=False
    )
    copied, written = await storage.read("copy.csv"), await storage.read("python.csv")
    assert copied == written
    assert (by_copy.rows, by_copy.size, by_copy.sha256) == (
        by_python.rows,
        by_python.size,
        by_python.sha256,
    )
    assert by_copy.rows == len(AWKWARD)
    # And what a partner's parser reads back is the data.
    dialect = {"delimiter": spec.delimiter}
    rows = list(csv.reader(io.StringIO(copied.decode(), newline=""), **dialect))
    fields = [c.field for c in spec.effective_columns()]
    if not {"employee_name", "location"} & set(fields):
        return
    at = fields.index("employee_name" if "employee_name" in fields else "location")
    names = [r[at] for r in rows[1 if spec.header else 0 :]]
    assert "Amira\nAhmed" in names and "Amira\r\nAhmed" in names and "" in names


def test_only_odd_names_and_delimiters_keep_the_python_writer() -> None:
    python_only = {"field": "start", "format": "%H:%M %Z"}
    assert copy_eligible(spec_model(columns=[{"field": "hours"}, python_only]), "postgresql")
    assert copy_eligible(spec_model(columns=[{"field": "hours"}]), "postgresql")
    long_header = {"field": "hours", "header": "h" * 64}
    assert not copy_eligible(spec_model(columns=[long_header]), "postgresql")
    assert not copy_eligible(spec_model(delimiter='"'), "postgresql")
    assert not copy_eligible(spec_model(), "sqlite")
    assert copy_eligible(spec_model(), "postgresql")


async def test_too_many_distinct_values_for_python_take_the_python_writer(
    db: Database,
    database_url: str,
    storage: Storage,
    tenant: Tenant,
    awkward: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the COPY path is PostgreSQL's")
    spec = spec_model(columns=[{"field": "employee_id"}, {"field": "hours", "format": ".3e"}])
    written = await build_file(db, storage, spec, tenant.id, DAY, DAY, "python.csv", use_copy=False)
    monkeypatch.setattr(build, "MAX_RENDERED", 3)
    built = await build_file(db, storage, spec, tenant.id, DAY, DAY, "many.csv")
    assert await storage.read("many.csv") == await storage.read("python.csv")
    assert (built.rows, built.sha256) == (written.rows, written.sha256)
    assert built.rows == len(AWKWARD)


def test_a_lone_end_marker_line_is_unquoted_across_chunks() -> None:
    text = b'name\n"\\."\n"\\."\n"a\n""\\."""\n""\n"\\."\n'
    want = b'name\n\\.\n\\.\n"a\n""\\."""\n""\n\\.\n'
    for cut in range(len(text) + 1):
        marker = _EndMarker()
        out = marker.convert(text[:cut]) + marker.convert(text[cut:])
        assert out + marker.convert(b"", final=True) == want, cut


def test_line_endings_change_outside_quotes_only_across_chunks() -> None:
    text = b'a,b\n"x\ny",z\n"q""\n",w\n'
    for cut in range(len(text) + 1):
        lines = _CrLf()
        out = lines.convert(text[:cut]) + lines.convert(text[cut:])
        assert out == b'a,b\r\n"x\ny",z\r\n"q""\n",w\r\n', cut


async def test_timesheets_fixture_still_builds(
    db: Database, storage: Storage, tenant: Tenant, timesheets: list[Timesheet]
) -> None:
    built = await build_file(db, storage, spec_model(), tenant.id, DAY, DAY, "t.csv")
    assert built.rows == 3


PATTERNS = ["%d/%m/%Y", "%Y%m%d", "%y-%m-%d", "%H%M", "%H:%M:%S", "%Y-%m-%dT%H:%M:%S",
            '%d.%m.%Y "at" %H.%M', "100%% %Y", "Day %d \\ %m", "hh:mm %H:%M"]  # fmt: skip
MOMENTS = [
    datetime(2026, 1, 5, 0, 0, tzinfo=UTC),
    datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC),  # London: just before the clocks go forward
    datetime(2026, 3, 29, 1, 0, 0, tzinfo=UTC),  # and just after
    datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
    datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC),
    datetime(2099, 7, 4, 9, 5, 3, tzinfo=UTC),
]


async def test_date_patterns_render_in_sql_as_strftime_does(
    db: Database, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("to_char is PostgreSQL's")
    tz = "Europe/London"
    async with db.session() as s:
        for fmt in PATTERNS:
            render = strftime_sql(fmt)
            assert render is not None, fmt
            for moment in MOMENTS:
                local = func.timezone(tz, literal(moment, DateTime(timezone=True)))
                got = await s.scalar(select(render(local)))
                assert got == moment.astimezone(ZoneInfo(tz)).strftime(fmt), (fmt, moment)
    assert strftime_sql("%") is None


# (No "-0": PostgreSQL's numeric has no negative zero, so no stored value is one.)
NUMBERS = ["7.25", "7.35", "-7.35", "-7.25", "0.05", "-0.05", "-0.04", "0.5", "1.5", "2.5",
           "-2.5", "1234.99", "0", "0.994", "0.995", "-0.995", "99.999"]  # fmt: skip


async def test_fixed_point_numbers_render_in_sql_as_python_formats_them(
    db: Database, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the SQL rendering is PostgreSQL's")
    async with db.session() as s:
        for fmt in (".0f", ".1f", ".2f", ".3f"):
            render, whole_render = number_sql(fmt, integer=False), number_sql(fmt, integer=True)
            assert render is not None and whole_render is not None
            for text in NUMBERS:
                value = Decimal(text)
                got = await s.scalar(select(render(literal(value, Numeric(12, 3)))))
                assert got == format(value, fmt), (fmt, text)
            for whole in (0, 7, -3, 30):
                got = await s.scalar(select(whole_render(literal(whole))))
                assert got == format(whole, fmt), (fmt, whole)
