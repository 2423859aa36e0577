"""Build an export file: rows streamed from the database into a storage writer.

On PostgreSQL the file is PostgreSQL's own `COPY (SELECT …) TO STDOUT` output, streamed
chunk by chunk. Cells are rendered in SQL: without a format, or with one `sqlformat`
renders as Python would; a column whose format only Python renders alike is rendered
in Python once per distinct value first, and COPY looks each cell up among those. The
few differences between COPY and Python's csv writer (line ending, empty strings, a
one-column `\\.`) are evened out so both paths write the same bytes. On SQLite (or past
`MAX_RENDERED` distinct values) the result set is read in batches (server-side cursor),
formatted in Python and written as it arrives. Either way memory does not grow with the
file (the values rendered first are at most `MAX_RENDERED` a column), and the file
becomes visible only when the writer finalizes (temporary object,
then an atomic rename).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    cast,
    func,
    literal,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement

from courier.common.csvsafe import defuse, defuse_sql
from courier.common.db.engine import Database
from courier.common.db.models_exports import Actual, Timesheet
from courier.common.storage import ObjectInfo, Storage
from courier.exporter.spec import FIELDS, Column, ExportSpecModel
from courier.exporter.sqlformat import Render, Stored, number_sql, strftime_sql

BATCH_ROWS = 20_000
MEMO_VALUES = 50_000
# Distinct values of a column rendered in Python before a COPY, at most.
MAX_RENDERED = 200_000
PG_NAME_BYTES = 63
DEFAULT_DATETIME = "%Y-%m-%d %H:%M"
_PG_DEFAULT_DATETIME = "YYYY-MM-DD HH24:MI"

_SOURCES: dict[str, Any] = {
    "timesheets": {
        "employee_id": Timesheet.employee_id,
        "employee_name": Timesheet.employee_name,
        "work_date": Timesheet.work_date,
        "start": Timesheet.start_at,
        "end": Timesheet.end_at,
        "break_minutes": Timesheet.break_minutes,
        "hours": Timesheet.hours,
        "location": Timesheet.location,
        "cost_centre": Timesheet.cost_centre,
        "approval": Timesheet.approval,
    },
    "actuals": {
        "location": Actual.location,
        "work_date": Actual.work_date,
        "hours": Actual.hours,
        "cost": Actual.cost,
    },
}


class BuildError(Exception):
    pass


@dataclass(frozen=True)
class Built:
    key: str
    rows: int
    size: int
    sha256: str


Converter = Callable[[Any], Any]
# A column's distinct values as text, each rendered as Python renders it, and the
# column's type in PostgreSQL (for a lookup by value rather than by text).
Rendered = tuple[list[str], list[str], str]
# Types whose text reads back as the same value (numeric does not: 8.0 = 8.00).
_BY_VALUE: dict[str, Any] = {
    "timestamp with time zone": DateTime(timezone=True),
    "timestamp without time zone": DateTime(),
    "date": Date(),
    "integer": Integer(),
    "bigint": BigInteger(),
    "smallint": SmallInteger(),
}


def _sql_format(kind: str, col: Column) -> Render | None:
    """The column's custom format as SQL, None if only Python renders it alike."""
    ftype = FIELDS[kind][col.field]
    if col.format is None or ftype == "text":
        return None
    if ftype in ("date", "datetime"):
        return strftime_sql(col.format)
    return number_sql(col.format, ftype == "integer", _stored(_SOURCES[kind][col.field]))


def _stored(attr: Any) -> Stored:
    """What a number column holds, from its SQL type."""
    kind = attr.type
    if isinstance(kind, Numeric) and kind.precision is not None and kind.scale is not None:
        return Stored(scale=kind.scale, whole_digits=kind.precision - kind.scale)
    if isinstance(kind, Integer):
        return Stored(scale=0, whole_digits=19)
    return Stored()


def _in_sql(kind: str, col: Column, dialect: str) -> bool:
    """PostgreSQL renders the cell itself (no format, or one it renders alike, see
    `sqlformat`): text costs less to move than values formatted in Python."""
    if dialect != "postgresql":
        return False
    if col.format is None or FIELDS[kind][col.field] == "text":
        return True
    return _sql_format(kind, col) is not None


def _converter(kind: str, col: Column, tz: ZoneInfo, neutralising: bool, dialect: str) -> Any:
    """How a column's cells become text in Python (None stays None); None when nothing
    (or csv's own str()) is needed."""
    ftype = FIELDS[kind][col.field]
    fmt = col.format
    if _in_sql(kind, col, dialect):
        return None
    if ftype == "text":
        return _Memo(defuse) if neutralising else None
    if ftype == "datetime":
        pattern = fmt or DEFAULT_DATETIME
        return _Memo(lambda v: _as_utc(v).astimezone(tz).strftime(pattern))
    if fmt is None:
        return None
    if ftype == "date":
        return _Memo(lambda v: v.strftime(fmt))
    if ftype == "integer":
        return _Memo(lambda v: format(v, fmt))
    # Decimals equal in value may differ in digits (8.0, 8.00, -0), which some formats
    # show: each is formatted.
    return lambda v: None if v is None else format(v, fmt)


class _Memo(dict[Any, Any]):
    """A converter whose text depends on the value alone, applied once per distinct
    value: exports repeat values (dates, shift times, names) from line to line.
    Bounded, so memory does not grow with the file."""

    def __init__(self, convert: Converter) -> None:
        super().__init__({None: None})
        self.convert = convert

    def __call__(self, value: Any) -> Any:
        return self[value]

    def __missing__(self, value: Any) -> Any:
        if len(self) >= MEMO_VALUES:
            self.clear()
            self[None] = None
        text = self[value] = self.convert(value)
        return text


def _as_utc(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _sql_text(spec: ExportSpecModel, col: Column, attr: Any) -> ColumnElement[Any]:
    """A cell as PostgreSQL renders it, with the same rules as the Python converters."""
    ftype = FIELDS[spec.kind][col.field]
    render = _sql_format(spec.kind, col)
    if ftype == "datetime":
        local = func.timezone(spec.schedule.zone.key, attr)
        if render is None:
            return type_coerce(func.to_char(local, _PG_DEFAULT_DATETIME), String())
        return type_coerce(render(local), String())
    if render is not None and ftype == "date":
        # As a timestamp: a date would become a timestamptz, midnight in the session's
        # zone, which may not exist there (zones that change clocks at midnight).
        return type_coerce(render(cast(attr, DateTime())), String())
    if render is not None:
        return type_coerce(render(attr), String())
    if ftype != "text":
        return cast(attr, Text)
    if not spec.neutralise_formulas:
        return attr
    return defuse_sql(attr)


def export_query(
    spec: ExportSpecModel,
    tenant_id: Any,
    start: date,
    end: date,
    dialect: str,
    *,
    for_copy: bool = False,
    mapped: dict[int, Rendered] | None = None,
) -> Any:
    """The rows of a period, in file order.

    `for_copy`: cells named by their header, and an empty cell written as the csv
    writer writes it: as NULL among other columns (COPY quotes an empty string, the csv
    writer does not), as an empty string when alone (both quote it, `""`, so the line
    is not blank). `mapped`: columns whose cells are looked up, by their value as text,
    among values Python rendered (see `_rendered_in_python`).
    """
    source = _SOURCES[spec.kind]
    columns = spec.effective_columns()
    exprs: list[ColumnElement[Any]] = []
    joins: list[tuple[Any, ColumnElement[Any]]] = []
    for i, col in enumerate(columns):
        attr = source[col.field]
        ftype = FIELDS[spec.kind][col.field]
        if for_copy:
            if mapped and i in mapped:
                lookup, on = _lookup(mapped[i], attr, f"rendered_{i}")
                joins.append((lookup, on))
                text = lookup.c.text
            else:
                text = _sql_text(spec, col, attr)
            if len(columns) > 1:
                text = func.nullif(text, literal(""))
            else:
                text = func.coalesce(text, literal(""))
            exprs.append(text.label(col.header or col.field))
        elif _in_sql(spec.kind, col, dialect):
            exprs.append(_sql_text(spec, col, attr))
        elif ftype == "datetime":
            # Read the stored value as is; the converter makes it local.
            exprs.append(type_coerce(attr, DateTime()))
        else:
            exprs.append(attr)
    query = select(*exprs).select_from(Timesheet if spec.kind == "timesheets" else Actual)
    for lookup, on in joins:
        query = query.outerjoin(lookup, on)
    query = _in_period(query, spec, tenant_id, start, end)
    if spec.kind == "timesheets":
        return query.order_by(Timesheet.work_date, Timesheet.employee_id, Timesheet.start_at)
    return query.order_by(Actual.work_date, Actual.location)


def _lookup(rendered: Rendered, attr: Any, name: str) -> tuple[Any, ColumnElement[Any]]:
    """The rendered texts as a table, and how a row finds its cell's text there: by value
    where the type allows (no per-row text conversion), else by the value as text."""
    keys, texts, type_name = rendered
    pairs = func.unnest(literal(keys, ARRAY(Text)), literal(texts, ARRAY(Text)))
    table = pairs.table_valued("key", "text").render_derived(name=f"{name}_text")
    typed = _BY_VALUE.get(type_name)
    if typed is None:
        return table, table.c.key == cast(attr, Text)
    lookup = select(cast(table.c.key, typed).label("key"), table.c.text).subquery(name)
    return lookup, lookup.c.key == attr


def _in_period(query: Any, spec: ExportSpecModel, tenant_id: Any, start: date, end: date) -> Any:
    if spec.kind == "timesheets":
        return query.where(
            Timesheet.tenant_id == tenant_id,
            Timesheet.work_date.between(start, end),
            Timesheet.approval.in_(spec.approval),
        )
    return query.where(Actual.tenant_id == tenant_id, Actual.work_date.between(start, end))


def copy_eligible(spec: ExportSpecModel, dialect: str) -> bool:
    """Whether PostgreSQL's COPY writes exactly what the csv writer would.

    Header names within PostgreSQL's 63-byte identifiers; a one-byte delimiter. Cells
    with a format only Python renders are rendered once per distinct value (so too many
    distinct values still take the Python writer, see `build_file`).
    """
    columns = spec.effective_columns()
    return (
        dialect == "postgresql"
        and all(len((c.header or c.field).encode()) <= PG_NAME_BYTES for c in columns)
        and len(spec.delimiter.encode()) == 1
        and spec.delimiter not in '"\r\n'
    )


async def build_file(
    db: Database,
    storage: Storage,
    spec: ExportSpecModel,
    tenant_id: Any,
    start: date,
    end: date,
    key: str,
    *,
    use_copy: bool = True,
) -> Built:
    """Stream the period's rows into `key`; nothing is visible there unless this returns."""
    dialect = db.engine.dialect.name
    if use_copy and copy_eligible(spec, dialect):
        built = await _build_by_copy(db, storage, spec, tenant_id, start, end, key)
        if built is not None:
            return built
    stmt = export_query(spec, tenant_id, start, end, dialect).execution_options(
        yield_per=BATCH_ROWS
    )
    columns = spec.effective_columns()
    tz = spec.schedule.zone
    converters = [
        (i, fn)
        for i, col in enumerate(columns)
        if (fn := _converter(spec.kind, col, tz, spec.neutralise_formulas, dialect)) is not None
    ]
    digest = hashlib.sha256()
    buf = io.StringIO()
    out = csv.writer(buf, delimiter=spec.delimiter, lineterminator="\r\n")
    writer = await storage.open_write(key)
    rows = 0
    try:

        async def flush() -> None:
            data = buf.getvalue().encode()
            buf.seek(0)
            buf.truncate()
            digest.update(data)
            await writer.write(data)

        if spec.header:
            out.writerow([c.header or c.field for c in columns])
        async for batch in _batches(db, stmt):
            out.writerows(_convert(batch, converters))
            rows += len(batch)
            await flush()
        await flush()
        info: ObjectInfo = await writer.finalize()
    except BaseException:
        await writer.abort()
        raise
    return Built(key=key, rows=rows, size=info.size, sha256=digest.hexdigest())


async def _batches(db: Database, stmt: Any) -> AsyncIterator[Sequence[Any]]:
    """Rows in batches from a server-side cursor.

    On PostgreSQL the cursor is asyncpg's own: its records go straight to the csv
    writer, skipping a Python row object per line (a third of the time at 1M lines).
    """
    async with db.engine.connect() as conn:
        if conn.dialect.name != "postgresql":
            result = await conn.stream(stmt)
            async for batch in result.partitions():
                yield batch
            return
        sql, args, raw = await _on_asyncpg(conn, stmt)
        async with raw.transaction(readonly=True):
            cursor = await raw.cursor(sql, *args)
            while batch := await cursor.fetch(BATCH_ROWS):
                yield batch


async def _on_asyncpg(conn: Any, stmt: Any) -> tuple[str, list[Any], Any]:
    """The statement as SQL and arguments for asyncpg itself, and its connection."""
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    args = [compiled.params[name] for name in compiled.positiontup or ()]
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None
    return compiled.string, args, raw


def _convert(batch: Sequence[Any], converters: list[tuple[int, Converter]]) -> Iterable[Any]:
    """The batch's rows with their cells converted, column by column (`map` over a
    column costs far less than a Python loop over every cell)."""
    if not converters or not batch:
        return batch
    columns: list[Iterable[Any]] = list(zip(*batch, strict=True))
    for i, fn in converters:
        columns[i] = map(fn.__getitem__ if isinstance(fn, _Memo) else fn, columns[i])
    return zip(*columns, strict=True)


async def _build_by_copy(
    db: Database,
    storage: Storage,
    spec: ExportSpecModel,
    tenant_id: Any,
    start: date,
    end: date,
    key: str,
) -> Built | None:
    """The file as PostgreSQL's COPY writes it, line endings made CRLF like the csv
    writer; None (nothing written) if a column only Python renders has too many
    distinct values to render them first."""
    async with db.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        # One snapshot for the values rendered first and the file.
        async with raw.transaction(readonly=True, isolation="repeatable_read"):
            mapped = await _rendered_in_python(conn, raw, spec, tenant_id, start, end)
            if mapped is None:
                return None
            stmt = export_query(
                spec, tenant_id, start, end, "postgresql", for_copy=True, mapped=mapped
            )
            sql, args, _ = await _on_asyncpg(conn, stmt)
            return await _copy_into(raw, sql, args, storage, spec, key)


async def _rendered_in_python(
    conn: Any, raw: Any, spec: ExportSpecModel, tenant_id: Any, start: date, end: date
) -> dict[int, Rendered] | None:
    """Each distinct value of the period's cells only Python renders alike, as text and
    as Python renders it (the same converters as the Python writer, on the same
    values as asyncpg decodes them); None past `MAX_RENDERED` values in a column."""
    source = _SOURCES[spec.kind]
    mapped: dict[int, Rendered] = {}
    for i, col in enumerate(spec.effective_columns()):
        convert = _converter(
            spec.kind, col, spec.schedule.zone, spec.neutralise_formulas, "postgresql"
        )
        if convert is None:
            continue
        attr = source[col.field]
        value = (
            type_coerce(attr, DateTime()) if FIELDS[spec.kind][col.field] == "datetime" else attr
        )
        query = select(cast(attr, Text).label("key"), value.label("value"))
        query = _in_period(query.distinct().where(attr.is_not(None)), spec, tenant_id, start, end)
        found = query.limit(MAX_RENDERED + 1).subquery()
        typed = select(found.c.key, found.c.value, cast(func.pg_typeof(found.c.value), Text))
        sql, args, _ = await _on_asyncpg(conn, typed)
        rows = await raw.fetch(sql, *args)
        if len(rows) > MAX_RENDERED:
            return None
        type_name = rows[0][2] if rows else "text"
        mapped[i] = ([r[0] for r in rows], [convert(r[1]) for r in rows], type_name)
    return mapped


async def _copy_into(
    raw: Any, sql: str, args: list[Any], storage: Storage, spec: ExportSpecModel, key: str
) -> Built:
    digest = hashlib.sha256()
    lines = _CrLf()
    marker = _EndMarker() if len(spec.effective_columns()) == 1 else None
    writer = await storage.open_write(key)
    try:

        async def sink(chunk: bytes, final: bool = False) -> None:
            if marker is not None:
                chunk = marker.convert(chunk, final=final)
            data = lines.convert(chunk)
            digest.update(data)
            await writer.write(data)

        status = await raw.copy_from_query(
            sql, *args, output=sink, format="csv", header=spec.header, delimiter=spec.delimiter
        )
        await sink(b"", final=True)
        info: ObjectInfo = await writer.finalize()
    except BaseException:
        await writer.abort()
        raise
    rows = int(status.split()[-1])
    return Built(key=key, rows=rows, size=info.size, sha256=digest.hexdigest())


class _CrLf:
    """LF → CRLF outside quoted cells, across chunk boundaries (a quoted cell keeps its
    own line breaks, as the csv writer leaves them)."""

    def __init__(self) -> None:
        self.quoted = False

    def convert(self, data: bytes) -> bytes:
        if b'"' not in data:
            return data if self.quoted else data.replace(b"\n", b"\r\n")
        parts = data.split(b'"')
        for i in range(len(parts)):
            if self.quoted == (i % 2 == 0):
                continue  # inside quotes
            parts[i] = parts[i].replace(b"\n", b"\r\n")
        self.quoted ^= len(parts) % 2 == 0
        return b'"'.join(parts)


_QUOTED_MARKER = re.compile(rb'^"\\\."$', re.MULTILINE)


class _EndMarker:
    """A one-column file's `\\.` line unquoted: COPY quotes it there (it would be its own
    end-of-data marker), the csv writer does not. Such a line can only be a whole cell
    (inside a quoted cell every quote is doubled), so lines are rewritten whole, the
    part after a chunk's last line break held back for the next."""

    def __init__(self) -> None:
        self.tail = b""

    def convert(self, data: bytes, *, final: bool = False) -> bytes:
        data = self.tail + data
        cut = len(data) if final else data.rfind(b"\n") + 1
        data, self.tail = data[:cut], data[cut:]
        return _QUOTED_MARKER.sub(rb"\\.", data)
