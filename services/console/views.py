"""What the console and the CLI show of imports: pydantic views and the queries behind them.

An import can hold a million audited records, so records are read by keyset: a page
starts after (or before) a `(row_number, seq)` cursor and walks an index, never an
OFFSET, and totals come from the counts on the import row, never `count(*)`.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator
from sqlalchemy import ColumnElement, Select, select, true, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common import decisions
from courier.common.csvsafe import defuse
from courier.common.db.engine import Database
from courier.common.db.models import Feed, Import, ImportRecord, Tenant

ACTIONS = ("created", "updated", "deleted", "unchanged", "errored")
STATUSES = (
    "completed",
    "completed_with_errors",
    "awaiting_approval",
    "scheduled",
    "rejected",
    "failed",
    "duplicate",
    "discarded",
    "unpacked",
)
Action = Literal["created", "updated", "deleted", "unchanged", "errored"]
# Rows of the errored-rows CSV read per query (keyset batches, constant memory).
ERRORS_BATCH = 5_000


class ImportSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    tenant: str
    feed: str | None
    file_name: str
    status: str
    error: str | None
    size: int
    sha256: str
    created: int
    updated: int
    deleted: int
    unchanged: int
    errored: int
    received_at: datetime
    finished_at: datetime | None
    # A test file: checked in full, its records a preview; nothing was applied.
    test: bool = False


class RecordView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    row_number: int
    seq: int = 0
    record_key: str | None
    action: str
    changes: dict[str, Any] | None
    error: str | None


class PendingDecisionView(BaseModel):
    decision: str
    by: str
    requested_at: datetime
    # False: queued in the outbox, the bus has not taken it yet.
    sent: bool


class ImportDetail(ImportSummary):
    details: dict[str, Any]
    records: list[RecordView]
    # How many records the filter selects, from the import's counts (no count(*)).
    records_total: int
    # Cursors of the neighbouring pages (`after=` / `before=`), None at either end.
    next_after: str | None = None
    prev_before: str | None = None
    duplicate_of: uuid.UUID | None = None
    has_result: bool = False
    decided_by: str | None = None
    decided_at: datetime | None = None
    pending_decisions: list[PendingDecisionView] = []


class FormQuery(BaseModel):
    """Query parameters as a page's GET form sends them."""

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        # An untouched form field arrives as "" and means "any".
        return None if isinstance(value, str) and not value.strip() else value


class ImportFilters(FormQuery):
    """The list's filters, as the page's form and the API's query string give them."""

    tenant: str | None = None
    feed: str | None = None
    status: str | None = None
    # True: test files only; False: live files only; None: both.
    test: bool | None = None
    received_from: date | None = None
    received_to: date | None = None

    @field_serializer("test", when_used="json")
    def _test_in_links(self, value: bool | None) -> str | None:
        # A link keeps "live only" as test=false (a query string drops a bare False).
        return None if value is None else str(value).lower()


class RecordFilters(FormQuery):
    """Which records of an import a page shows: one action or all, and where it starts."""

    action: Action | None = None
    after: str | None = None
    before: str | None = None
    row: int | None = Field(default=None, ge=0)
    last: bool = False
    notice: str | None = None
    problem: str | None = None


def summary(imp: Import) -> ImportSummary:
    return ImportSummary(
        id=imp.id,
        tenant=imp.tenant.slug,
        feed=imp.feed.name if imp.feed else None,
        file_name=imp.file_name,
        status=imp.status,
        error=imp.error,
        size=imp.size,
        sha256=imp.sha256,
        created=imp.created,
        updated=imp.updated,
        deleted=imp.deleted,
        unchanged=imp.unchanged,
        errored=imp.errored,
        received_at=imp.received_at,
        finished_at=imp.finished_at,
        test=imp.test,
    )


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


async def list_imports(
    session: AsyncSession,
    *,
    tenant: str | None = None,
    status: str | None = None,
    feed: str | None = None,
    test: bool | None = None,
    received_from: date | None = None,
    received_to: date | None = None,
    scope: ColumnElement[bool] | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[ImportSummary]:
    """Newest first; `scope` (from `access.scope`) keeps a customer to their tenant.

    `received_to` is a whole day: files received on it are included.
    """
    query = (
        select(Import)
        .where(scope if scope is not None else true())
        .order_by(Import.received_at.desc(), Import.id)
        .limit(limit)
        .offset(offset)
    )
    if tenant:
        query = query.join(Tenant, Import.tenant_id == Tenant.id).where(Tenant.slug == tenant)
    if feed:
        query = query.join(Feed, Import.feed_id == Feed.id).where(Feed.name == feed)
    if status:
        query = query.where(Import.status == status)
    if test is not None:
        query = query.where(Import.test.is_(test))
    if received_from:
        query = query.where(Import.received_at >= _start_of(received_from))
    if received_to:
        query = query.where(Import.received_at < _start_of(received_to + timedelta(days=1)))
    return [summary(imp) for imp in (await session.scalars(query)).unique()]


async def filter_choices(
    session: AsyncSession, tenant_id: uuid.UUID | None
) -> tuple[list[str], list[str]]:
    """Tenant slugs and feed names the filter form offers: one tenant's, or all (staff)."""
    tenants = select(Tenant.slug).order_by(Tenant.slug)
    feeds = select(Feed.name).distinct().order_by(Feed.name)
    if tenant_id is not None:
        tenants = tenants.where(Tenant.id == tenant_id)
        feeds = feeds.where(Feed.tenant_id == tenant_id)
    return list(await session.scalars(tenants)), list(await session.scalars(feeds))


async def get_import(
    session: AsyncSession, import_id: uuid.UUID, scope: ColumnElement[bool] | None = None
) -> Import | None:
    """The import, or None when it is missing or outside `scope` (the same answer)."""
    return await session.scalar(
        select(Import).where(Import.id == import_id, scope if scope is not None else true())
    )


def parse_cursor(text: str | None) -> tuple[int, int] | None:
    """`"<row_number>.<seq>"` as a tuple; None for no cursor. ValueError if malformed."""
    if not text:
        return None
    row, _, seq = text.partition(".")
    return int(row), int(seq or 0)


def cursor_of(record: ImportRecord | RecordView) -> str:
    return f"{record.row_number}.{record.seq}"


def _records(import_id: uuid.UUID, action: str | None) -> Select[tuple[ImportRecord]]:
    """An import's records, one action or all, as a range of the key.

    Deleted records are all on row 0 (what a full sync removed), every other record on
    its file row: bounding the row keeps a deleted page, and a backward scan of any
    other action, inside its own part of the key instead of reading the whole import.
    """
    query = select(ImportRecord).where(ImportRecord.import_id == import_id)
    if action == "deleted":
        return query.where(ImportRecord.row_number == 0, ImportRecord.action == action)
    if action:
        return query.where(ImportRecord.row_number > 0, ImportRecord.action == action)
    return query


def _past(cursor: tuple[int, int]) -> ColumnElement[bool]:
    return tuple_(ImportRecord.row_number, ImportRecord.seq) > tuple_(*cursor)


def _from(cursor: tuple[int, int]) -> ColumnElement[bool]:
    return tuple_(ImportRecord.row_number, ImportRecord.seq) >= tuple_(*cursor)


def _short_of(cursor: tuple[int, int]) -> ColumnElement[bool]:
    return tuple_(ImportRecord.row_number, ImportRecord.seq) < tuple_(*cursor)


_ASC = (ImportRecord.row_number, ImportRecord.seq)
_DESC = (ImportRecord.row_number.desc(), ImportRecord.seq.desc())


async def _any(session: AsyncSession, query: Select[tuple[ImportRecord]], *order: Any) -> bool:
    """Whether `query` has a row; ordered along the index, so the nearest row ends the scan
    (without an order PostgreSQL may read the whole import to find none)."""
    first = query.with_only_columns(ImportRecord.row_number).order_by(*order).limit(1)
    return await session.scalar(first) is not None


async def record_page(
    session: AsyncSession,
    import_id: uuid.UUID,
    *,
    action: str | None = None,
    after: tuple[int, int] | None = None,
    before: tuple[int, int] | None = None,
    from_row: int | None = None,
    last: bool = False,
    limit: int = 50,
) -> tuple[list[RecordView], str | None, str | None]:
    """One page of records in (row_number, seq) order, and the cursors of its neighbours.

    Forward from `after` or from row `from_row`; backward from `before` or from the end
    (`last`). Each is one range scan of the key, so the millionth row opens as fast as
    the first; a neighbour is looked up only after a jump to a row (a cursor already
    proves the row it names exists).
    """
    base = _records(import_id, action)
    backward = before is not None or last
    query = base
    if after is not None:
        query = query.where(_past(after))
    elif from_row is not None:
        query = query.where(_from((from_row, 0)))
    elif before is not None:
        query = query.where(_short_of(before))
    rows = list(
        await session.scalars(query.order_by(*(_DESC if backward else _ASC)).limit(limit + 1))
    )
    more = len(rows) > limit
    rows = rows[:limit]
    if backward:
        rows.reverse()
    records = [RecordView.model_validate(r) for r in rows]
    if not records:
        return records, None, None
    first = (records[0].row_number, records[0].seq)
    if backward:
        has_prev, has_next = more, before is not None
    else:
        has_next = more
        has_prev = after is not None or (
            from_row is not None and await _any(session, base.where(_short_of(first)), *_DESC)
        )
    return (
        records,
        cursor_of(records[-1]) if has_next else None,
        cursor_of(records[0]) if has_prev else None,
    )


def total_of(imp: Import, action: str | None) -> int:
    """Records the filter selects, from the import's own counts."""
    if action:
        return int(getattr(imp, action)) if action in ACTIONS else 0
    return sum(int(getattr(imp, a)) for a in ACTIONS)


async def import_detail(
    session: AsyncSession,
    imp: Import,
    *,
    action: str | None = None,
    after: tuple[int, int] | None = None,
    before: tuple[int, int] | None = None,
    from_row: int | None = None,
    last: bool = False,
    limit: int = 1000,
) -> ImportDetail:
    records, next_after, prev_before = await record_page(
        session,
        imp.id,
        action=action,
        after=after,
        before=before,
        from_row=from_row,
        last=last,
        limit=limit,
    )
    duplicate_of = (imp.details or {}).get("duplicate_of")
    return ImportDetail(
        **summary(imp).model_dump(),
        details=imp.details or {},
        records=records,
        records_total=total_of(imp, action),
        next_after=next_after,
        prev_before=prev_before,
        duplicate_of=uuid.UUID(duplicate_of) if duplicate_of else None,
        has_result=imp.result_key is not None,
        decided_by=imp.decided_by,
        decided_at=imp.decided_at,
        pending_decisions=[
            PendingDecisionView(**vars(p)) for p in await decisions.pending(session, imp)
        ],
    )


def errors_file_name(imp: Import) -> str:
    return f"{imp.file_name}.errors.csv"


async def errors_csv(db: Database, import_id: uuid.UUID) -> AsyncIterator[bytes]:
    """The errored rows as CSV (row, key, error), read in keyset batches as it is sent.

    Cells are defused: the file is opened in a spreadsheet and the text came from a
    partner. The original cells are not kept in the audit, so they are not repeated.
    Its own session: the body is sent after the request's session has closed.
    """
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\r\n")
    out.writerow(["row", "key", "error"])
    after: tuple[int, int] | None = None
    async with db.session() as session:
        while True:
            query = _records(import_id, "errored")
            if after is not None:
                query = query.where(_past(after))
            rows = list(await session.scalars(query.order_by(*_ASC).limit(ERRORS_BATCH)))
            for r in rows:
                out.writerow([r.row_number, defuse(r.record_key), defuse(r.error)])
            yield buf.getvalue().encode("utf-8")
            buf.seek(0)
            buf.truncate()
            if len(rows) < ERRORS_BATCH:
                return
            after = (rows[-1].row_number, rows[-1].seq)
