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
from courier.common.db.models_incidents import PickupWatch
from courier.console.deps import Session

router = APIRouter(prefix="/api/exports", tags=["exports"])


class AttemptView(BaseModel):
    destination: str
    attempted_at: datetime
    outcome: str
    error: str | None
    size: int | None


class PickupView(BaseModel):
    """A copy in the pickup area: when the partner must collect it, and whether they did."""

    path: str
    collect_by: datetime
    collected_at: datetime | None
    collected_by: str | None
    alerted_at: datetime | None


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
    pickups: list[PickupView] = []


def export_view(export: Export, pickups: list[PickupView] | None = None) -> ExportView:
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
        pickups=pickups or [],
    )


async def pickups_for(s: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, list[PickupView]]:
    found: dict[uuid.UUID, list[PickupView]] = {}
    if not ids:
        return found
    rows = await s.scalars(
        select(PickupWatch).where(PickupWatch.export_id.in_(ids)).order_by(PickupWatch.path)
    )
    for w in rows:
        found.setdefault(w.export_id, []).append(PickupView.model_validate(w, from_attributes=True))
    return found


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
    exports = list((await s.scalars(stmt.limit(limit).offset(offset))).unique())
    pickups = await pickups_for(s, [e.id for e in exports])
    return [export_view(e, pickups.get(e.id)) for e in exports]


@router.get("", response_model=list[ExportView])
async def get_exports(
    s: Session,
    tenant: str | None = None,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[ExportView]:
    return await list_exports(s, tenant=tenant, status=status, limit=limit, offset=offset)


async def get_export_view(s: AsyncSession, export_id: uuid.UUID) -> ExportView | None:
    export = await s.get(Export, export_id)
    if export is None:
        return None
    return export_view(export, (await pickups_for(s, [export.id])).get(export.id))


@router.get("/{export_id}", response_model=ExportView)
async def get_export(export_id: uuid.UUID, s: Session) -> ExportView:
    view = await get_export_view(s, export_id)
    if view is None:
        raise HTTPException(404, f"no export {export_id}")
    return view
