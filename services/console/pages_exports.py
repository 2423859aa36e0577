"""Export pages: the list, and one export with its build, every delivery attempt,
whether and when the partner collected the file, and redelivery.

Redelivery is staged as the `courier exports redeliver` command is (`exports.redeliver`)
and audited; the exporter carries it out.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import Response

from courier.common.db.base import utcnow
from courier.console import exports
from courier.console.access import CurrentViewer, StaffViewer, found_or_404
from courier.console.paging import PAGE_SIZE, pager, tenant_slugs
from courier.console.render import Outcome, back_after, countdown, page

router = APIRouter(include_in_schema=False)

STATUSES = ("pending", "delivering", "delivered", "failed", "undeliverable")


def collection(view: exports.ExportView) -> str:
    """One word for the pickup copies: collected, waiting, overdue (or none to collect)."""
    if not view.pickups:
        return "none"
    if all(w.collected_at for w in view.pickups):
        return "collected"
    return (
        "overdue" if any(w.alerted_at and not w.collected_at for w in view.pickups) else "waiting"
    )


@router.get("/exports")
async def export_list(
    request: Request,
    viewer: CurrentViewer,
    tenant: str | None = None,
    spec: str | None = None,
    status: str | None = None,
    offset: int = 0,
) -> Response:
    offset = max(offset, 0)
    async with request.app.state.db.session() as s:
        rows = await exports.list_exports(
            s,
            viewer=viewer,
            tenant=tenant if viewer.is_staff else None,
            spec=spec or None,
            status=status or None,
            limit=PAGE_SIZE,
            offset=offset,
        )
        tenants = await tenant_slugs(s, viewer)
    filters = {"tenant": tenant, "spec": spec, "status": status}
    return page(
        request,
        "exports/list.html",
        viewer,
        rows=[(r, collection(r)) for r in rows],
        filters=filters,
        statuses=STATUSES,
        tenants=tenants,
        links=pager("/exports", filters, offset, len(rows)),
    )


@router.get("/exports/{export_id}")
async def export_page(
    request: Request,
    viewer: CurrentViewer,
    export_id: uuid.UUID,
    outcome: Outcome,
) -> Response:
    async with request.app.state.db.session() as s:
        view = found_or_404(await exports.get_export_view(s, export_id, viewer), "export")
    now = utcnow()
    pickups = [
        (
            w,
            None if w.collected_at else countdown(w.collect_by, now, late_word="overdue"),
        )
        for w in view.pickups
    ]
    delivery_clock = (
        countdown(view.deliver_by, now, late_word="window closed")
        if view.status == "delivering" and view.deliver_by
        else None
    )
    return page(
        request,
        "exports/detail.html",
        viewer,
        export=view,
        pickups=pickups,
        delivery_clock=delivery_clock,
        collected=collection(view),
        **outcome,
    )


@router.get("/exports/{export_id}/file")
async def export_file(request: Request, viewer: CurrentViewer, export_id: uuid.UUID) -> Response:
    return await exports.download(request, viewer, export_id)


@router.post("/exports/{export_id}/redeliver")
async def redeliver(request: Request, viewer: StaffViewer, export_id: uuid.UUID) -> Response:
    done = exports.redeliver(request, viewer, export_id)
    return await back_after(f"/exports/{export_id}", done)
