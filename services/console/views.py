"""What the console and the CLI show of imports: pydantic views and the queries behind them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common import decisions
from courier.common.db.models import Import, ImportRecord, Tenant


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


class RecordView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    row_number: int
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
    records_total: int
    decided_by: str | None = None
    decided_at: datetime | None = None
    pending_decisions: list[PendingDecisionView] = []


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
    )


async def list_imports(
    session: AsyncSession,
    *,
    tenant: str | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[ImportSummary]:
    query = (
        select(Import).order_by(Import.received_at.desc(), Import.id).limit(limit).offset(offset)
    )
    if tenant:
        query = query.join(Tenant, Import.tenant_id == Tenant.id).where(Tenant.slug == tenant)
    if status:
        query = query.where(Import.status == status)
    return [summary(imp) for imp in (await session.scalars(query)).unique()]


async def get_import(session: AsyncSession, import_id: uuid.UUID) -> Import | None:
    return await session.get(Import, import_id)


async def import_detail(
    session: AsyncSession,
    imp: Import,
    *,
    action: str | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> ImportDetail:
    query = select(ImportRecord).where(ImportRecord.import_id == imp.id)
    count_query = (
        select(func.count()).select_from(ImportRecord).where(ImportRecord.import_id == imp.id)
    )
    if action:
        query = query.where(ImportRecord.action == action)
        count_query = count_query.where(ImportRecord.action == action)
    records = await session.scalars(
        query.order_by(ImportRecord.row_number, ImportRecord.seq).limit(limit).offset(offset)
    )
    total = await session.scalar(count_query) or 0
    return ImportDetail(
        **summary(imp).model_dump(),
        details=imp.details or {},
        records=[RecordView.model_validate(r) for r in records],
        records_total=total,
        decided_by=imp.decided_by,
        decided_at=imp.decided_at,
        pending_decisions=[
            PendingDecisionView(**vars(p)) for p in await decisions.pending(session, imp)
        ],
    )
