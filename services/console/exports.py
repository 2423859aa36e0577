"""Exports in the console and the CLI: every build, delivery attempt and pickup, and
redelivery.

A redelivery is sent to the exporter as a command (it owns exports), exactly as
`courier exports redeliver` sends it. Every query takes the viewer, so a customer
sees their tenant's exports only; the CLI passes none and sees all.
"""

from __future__ import annotations

import mimetypes
import uuid
from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import ColumnElement, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common import export_requests
from courier.common.db.models import Tenant
from courier.common.db.models_exports import Export, ExportSpec
from courier.common.db.models_incidents import PickupWatch
from courier.common.db.models_outbox import OutboxEvent
from courier.common.events import EXPORT_REDELIVER, ExportRedeliver
from courier.console.access import (
    CurrentViewer,
    StaffViewer,
    Viewer,
    audit,
    found_or_404,
    refused_as_http,
    scope,
)
from courier.console.deps import Session
from courier.console.downloads import stored_file

router = APIRouter(prefix="/api/exports", tags=["exports"])


class AttemptView(BaseModel):
    destination: str
    attempted_at: datetime
    outcome: str
    error: str | None
    size: int | None


class DestinationView(BaseModel):
    """Where the export goes, and how its attempts there went."""

    destination: str
    attempts: int
    last_outcome: str
    last_attempted_at: datetime
    last_error: str | None
    delivered_at: datetime | None


class PickupView(BaseModel):
    """A copy in the pickup area: when the partner must collect it, and whether they did."""

    path: str
    placed_at: datetime | None = None
    collect_by: datetime
    collected_at: datetime | None
    collected_by: str | None
    alerted_at: datetime | None


class PendingRedeliveryView(BaseModel):
    by: str
    requested_at: datetime
    # False while the command waits in the outbox (the bus was not reachable).
    sent: bool


class ExportView(BaseModel):
    id: uuid.UUID
    tenant: str
    spec: str
    kind: str
    period_start: date
    period_end: date
    scheduled_for: datetime
    # A sample for the partner's testing (in /outbound/test/), not the period's export.
    test: bool = False
    status: str
    file_name: str | None
    rows: int | None
    size: int | None
    sha256: str | None
    error: str | None
    built_at: datetime | None
    delivery_started_at: datetime | None = None
    deliver_by: datetime | None
    finished_at: datetime | None
    attempts: list[AttemptView]
    deliveries: list[DestinationView] = []
    pickups: list[PickupView] = []
    # Redeliveries people asked for that the exporter has not started yet (detail only).
    pending_redeliveries: list[PendingRedeliveryView] = []


class RedeliverOut(BaseModel):
    export_id: uuid.UUID
    status: str
    message: str


def _destinations(attempts: list[AttemptView]) -> list[DestinationView]:
    """Attempts grouped by destination, in the order each was first tried."""
    grouped: dict[str, list[AttemptView]] = {}
    for a in attempts:
        grouped.setdefault(a.destination, []).append(a)
    out = []
    for destination, tries in grouped.items():
        last = tries[-1]
        delivered = [a.attempted_at for a in tries if a.outcome == "delivered"]
        out.append(
            DestinationView(
                destination=destination,
                attempts=len(tries),
                last_outcome=last.outcome,
                last_attempted_at=last.attempted_at,
                last_error=last.error,
                delivered_at=delivered[-1] if delivered else None,
            )
        )
    return out


def export_view(export: Export, pickups: list[PickupView] | None = None) -> ExportView:
    attempts = [AttemptView.model_validate(a, from_attributes=True) for a in export.attempts]
    return ExportView(
        id=export.id,
        tenant=export.spec.tenant.slug,
        spec=export.spec.name,
        kind=export.spec.kind,
        period_start=export.period_start,
        period_end=export.period_end,
        scheduled_for=export.scheduled_for,
        test=export.test,
        status=export.status,
        file_name=export.file_name,
        rows=export.rows,
        size=export.size,
        sha256=export.sha256,
        error=export.error,
        built_at=export.built_at,
        delivery_started_at=export.delivery_started_at,
        deliver_by=export.deliver_by,
        finished_at=export.finished_at,
        attempts=attempts,
        deliveries=_destinations(attempts),
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


def _visible(viewer: Viewer | None) -> ColumnElement[bool]:
    return scope(viewer, Export.tenant_id) if viewer is not None else true()


async def list_exports(
    s: AsyncSession,
    *,
    viewer: Viewer | None = None,
    tenant: str | None = None,
    spec: str | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[ExportView]:
    stmt = (
        select(Export)
        .join(ExportSpec)
        .where(_visible(viewer))
        .order_by(Export.scheduled_for.desc(), Export.id)
    )
    if tenant:
        stmt = stmt.join(Tenant, Tenant.id == Export.tenant_id).where(Tenant.slug == tenant)
    if spec:
        stmt = stmt.where(ExportSpec.name == spec)
    if status:
        stmt = stmt.where(Export.status == status)
    exports = list((await s.scalars(stmt.limit(limit).offset(offset))).unique())
    pickups = await pickups_for(s, [e.id for e in exports])
    return [export_view(e, pickups.get(e.id)) for e in exports]


async def find(s: AsyncSession, export_id: uuid.UUID, viewer: Viewer | None) -> Export | None:
    """The export if the viewer may see it: another tenant's reads as a missing one."""
    found = await s.scalars(select(Export).where(Export.id == export_id, _visible(viewer)))
    return found.unique().one_or_none()


async def pending_redeliveries(s: AsyncSession, export: Export) -> list[PendingRedeliveryView]:
    """Redeliveries asked of `export` that no delivery round has answered yet."""
    rows = await s.scalars(
        select(OutboxEvent)
        .where(
            OutboxEvent.subject == EXPORT_REDELIVER,
            OutboxEvent.payload["export_id"].as_string() == str(export.id),
        )
        .order_by(OutboxEvent.id)
    )
    out = []
    for row in rows:
        command = ExportRedeliver.model_validate(row.payload)
        if not export_requests.round_since(export, command):
            out.append(
                PendingRedeliveryView(
                    by=command.by,
                    requested_at=command.occurred_at,
                    sent=row.published_at is not None,
                )
            )
    return out


async def get_export_view(
    s: AsyncSession, export_id: uuid.UUID, viewer: Viewer | None = None
) -> ExportView | None:
    export = await find(s, export_id, viewer)
    if export is None:
        return None
    view = export_view(export, (await pickups_for(s, [export.id])).get(export.id))
    view.pending_redeliveries = await pending_redeliveries(s, export)
    return view


async def redeliver(request: Request, viewer: Viewer, export_id: uuid.UUID) -> RedeliverOut:
    """Stage the redelivery as the viewer, with its audit line, in one transaction.

    404 when the export is missing (or not the viewer's); 409 with the reason when it
    was never built.
    """
    with refused_as_http("export", export_requests.ExportRefused):
        async with request.app.state.db.transaction() as s:
            export = found_or_404(await find(s, export_id, viewer), "export")
            await export_requests.request_redeliver(s, export_id, viewer.name)
            audit(
                s,
                request,
                viewer,
                action="export.redeliver",
                tenant_id=export.tenant_id,
                target_type="export",
                target_id=export_id,
                summary=f"asked to deliver {export.spec.tenant.slug}/{export.spec.name} "
                f"{export.period_start}..{export.period_end} again",
            )
            status = export.status
    return RedeliverOut(
        export_id=export_id,
        status=status,
        message="redelivery sent; the exporter delivers it again to every destination "
        "(follow the export)",
    )


async def download(request: Request, viewer: Viewer, export_id: uuid.UUID) -> Response:
    """The built file as the partner receives it; audited before it streams."""
    async with request.app.state.db.session() as s:
        export = found_or_404(await find(s, export_id, viewer), "export")
    name = export.file_name or f"export-{export.id}"
    return await stored_file(
        request,
        viewer,
        key=export.storage_key,
        file_name=name,
        what="export",
        target_type="export",
        target_id=export.id,
        tenant_id=export.tenant_id,
        sha256=export.sha256,
        media_type=mimetypes.guess_type(name)[0] or "application/octet-stream",
    )


@router.get("", response_model=list[ExportView])
async def get_exports(
    s: Session,
    viewer: CurrentViewer,
    tenant: str | None = None,
    spec: str | None = None,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[ExportView]:
    return await list_exports(
        s, viewer=viewer, tenant=tenant, spec=spec, status=status, limit=limit, offset=offset
    )


@router.get("/{export_id}", response_model=ExportView)
async def get_export(export_id: uuid.UUID, s: Session, viewer: CurrentViewer) -> ExportView:
    return found_or_404(await get_export_view(s, export_id, viewer), "export")


@router.get("/{export_id}/file", response_class=Response)
async def get_export_file(
    export_id: uuid.UUID, request: Request, viewer: CurrentViewer
) -> Response:
    return await download(request, viewer, export_id)


@router.post("/{export_id}/redeliver", response_model=RedeliverOut, status_code=202)
async def api_redeliver(
    export_id: uuid.UUID, request: Request, viewer: StaffViewer
) -> RedeliverOut:
    return await redeliver(request, viewer, export_id)
