"""Console API: exports and every delivery attempt, for support staff."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common.db.models import Tenant
from courier.common.db.models_exports import Export, ExportSpec
from courier.console.deps import Session

router = APIRouter(prefix="/api/exports", tags=["exports"])


class AttemptView(BaseModel):
    destination: str
    attempted_at: datetime
    outcome: str
    error: str | None
    size: int | None


class ExportView(BaseModel):
    id: uuid.UUID
    tenant: str
    spec: str
    kind: str
    period_start: date
    period_end: date
    scheduled_for: datetime
    status: str
    file_name: str | None
    rows: int | None
    size: int | None
    sha256: str | None
    error: str | None
    built_at: datetime | None
    deliver_by: datetime | None
    finished_at: datetime | None
    attempts: list[AttemptView]


def export_view(export: Export) -> ExportView:
    return ExportView(
        id=export.id,
        tenant=export.spec.tenant.slug,
        spec=export.spec.name,
        kind=export.spec.kind,
        period_start=export.period_start,
        period_end=export.period_end,
        scheduled_for=export.scheduled_for,
        status=export.status,
        file_name=export.file_name,
        rows=export.rows,
        size=export.size,
        sha256=export.sha256,
        error=export.error,
        built_at=export.built_at,
        deliver_by=export.deliver_by,
        finished_at=export.finished_at,
        attempts=[AttemptView.model_validate(a, from_attributes=True) for a in export.attempts],
    )


async def list_exports(
    s: AsyncSession,
    *,
    tenant: str | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[ExportView]:
    stmt = select(Export).join(ExportSpec).order_by(Export.scheduled_for.desc(), Export.id)
    if tenant:
        stmt = stmt.join(Tenant, Tenant.id == Export.tenant_id).where(Tenant.slug == tenant)
    if status:
        stmt = stmt.where(Export.status == status)
    rows = await s.scalars(stmt.limit(limit).offset(offset))
    return [export_view(e) for e in rows.unique()]


@router.get("", response_model=list[ExportView])
async def get_exports(
    s: Session,
    tenant: str | None = None,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[ExportView]:
    return await list_exports(s, tenant=tenant, status=status, limit=limit, offset=offset)


@router.get("/{export_id}", response_model=ExportView)
async def get_export(export_id: uuid.UUID, s: Session) -> ExportView:
    export = await s.get(Export, export_id)
    if export is None:
        raise HTTPException(404, f"no export {export_id}")
    return export_view(export)
