"""Build an export file: rows streamed from the database into a storage writer.

The result set is read in batches (server-side cursor on PostgreSQL), formatted and
written as it arrives, so memory does not grow with the file. The file becomes
visible only when the writer finalizes (temporary object, then an atomic rename).
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import DateTime, String, Text, and_, case, cast, func, literal, select, type_coerce
from sqlalchemy.sql.elements import ColumnElement

from courier.common.db.engine import Database
from courier.common.db.models_exports import Actual, Timesheet
from courier.common.storage import ObjectInfo, Storage
from courier.exporter.csvsafe import NUMBER, TRIGGERS, neutralise
from courier.exporter.spec import FIELDS, Column, ExportSpecModel

BATCH_ROWS = 20_000
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


def _in_sql(col: Column, dialect: str) -> bool:
    """PostgreSQL renders cells without a custom format itself: text costs less to move."""
    return dialect == "postgresql" and col.format is None


def _converter(kind: str, col: Column, tz: ZoneInfo, neutralising: bool, dialect: str) -> Any:
    """How a cell becomes text in Python; None when nothing (or csv's own str()) is needed."""
    ftype = FIELDS[kind][col.field]
    fmt = col.format
    if _in_sql(col, dialect):
        return None
    if ftype == "text":
        return neutralise if neutralising else None
    if ftype == "datetime":
        pattern = fmt or DEFAULT_DATETIME
        return lambda v: _as_utc(v).astimezone(tz).strftime(pattern)
    if fmt is None:
        return None
    if ftype == "date":
        return lambda v: v.strftime(fmt)
    return lambda v: format(v, fmt)


def _as_utc(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _sql_text(spec: ExportSpecModel, ftype: str, attr: Any) -> ColumnElement[Any]:
    """A cell as PostgreSQL renders it, with the same rules as the Python converters."""
    if ftype == "datetime":
        local = func.timezone(spec.schedule.timezone, attr)
        return type_coerce(func.to_char(local, _PG_DEFAULT_DATETIME), String())
    if ftype != "text":
        return cast(attr, Text)
    if not spec.neutralise_formulas:
        return attr
    risky = and_(func.left(attr, 1).in_(TRIGGERS), ~attr.regexp_match(NUMBER.pattern))
    return case((risky, literal("'") + attr), else_=attr)


def export_query(
    spec: ExportSpecModel, tenant_id: Any, start: date, end: date, dialect: str
) -> Any:
    """The rows of a period, in file order."""
    source = _SOURCES[spec.kind]
    exprs: list[ColumnElement[Any]] = []
    for col in spec.effective_columns():
        attr = source[col.field]
        ftype = FIELDS[spec.kind][col.field]
        if _in_sql(col, dialect):
            exprs.append(_sql_text(spec, ftype, attr))
        elif ftype == "datetime":
            # Read the stored value as is; the converter makes it local.
            exprs.append(type_coerce(attr, DateTime()))
        else:
            exprs.append(attr)
    if spec.kind == "timesheets":
        return (
            select(*exprs)
            .where(
                Timesheet.tenant_id == tenant_id,
                Timesheet.work_date.between(start, end),
                Timesheet.approval.in_(spec.approval),
            )
            .order_by(Timesheet.work_date, Timesheet.employee_id, Timesheet.start_at)
        )
    return (
        select(*exprs)
        .where(Actual.tenant_id == tenant_id, Actual.work_date.between(start, end))
        .order_by(Actual.work_date, Actual.location)
    )


async def build_file(
    db: Database,
    storage: Storage,
    spec: ExportSpecModel,
    tenant_id: Any,
    start: date,
    end: date,
    key: str,
) -> Built:
    """Stream the period's rows into `key`; nothing is visible there unless this returns."""
    dialect = db.engine.dialect.name
    stmt = export_query(spec, tenant_id, start, end, dialect).execution_options(
        yield_per=BATCH_ROWS
    )
    columns = spec.effective_columns()
    tz = ZoneInfo(spec.schedule.timezone)
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
        compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        args = [compiled.params[name] for name in compiled.positiontup or ()]
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        async with raw.transaction(readonly=True):
            cursor = await raw.cursor(compiled.string, *args)
            while batch := await cursor.fetch(BATCH_ROWS):
                yield batch


def _convert(batch: Sequence[Any], converters: list[tuple[int, Converter]]) -> Sequence[Any]:
    if not converters:
        return batch
    out = []
    for row in batch:
        cells = list(row)
        for i, fn in converters:
            value = cells[i]
            if value is not None:
                cells[i] = fn(value)
        out.append(cells)
    return out
