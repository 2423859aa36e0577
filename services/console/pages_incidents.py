"""Incident pages: the list, and one incident with a live countdown for each SLA timer,
its history, who was told, and the actions on-call takes (acknowledge, resolve, note).

The links that SMS and e-mails carry (`{console_base_url}/incidents/{id}`) open the
detail page; a signed-out visit goes through sign-in and comes back to it. Actions are
the JSON API's (`incidents.act`): staged as commands for the monitor and audited.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from courier.common.db.base import utcnow
from courier.common.db.models_incidents import NOTE_KINDS, PARTNER_KINDS, PLATFORM_KINDS
from courier.console import incidents
from courier.console.access import CurrentViewer, StaffViewer
from courier.console.incidents import TimerView
from courier.console.paging import PAGE_SIZE, pager, tenant_slugs
from courier.console.render import Countdown, Outcome, back_after, countdown, page

router = APIRouter(include_in_schema=False)

STATES = ("unresolved", "open", "acknowledged", "resolved", "all")
KINDS = sorted(PLATFORM_KINDS | PARTNER_KINDS)
TIMER_LABELS = {
    "resolve": "Resolve",
    "contact": "Contact the partner",
    "respond": "Reply to the partner",
}
NOTE_LABELS = {
    "note": "Note",
    "contacted": "We contacted the partner (stops the contact clock)",
    "partner_response": "The partner replied (starts the reply clock)",
    "reply": "We replied to the partner (stops the reply clock)",
}
Text = Annotated[str, Form(max_length=10_000)]


@dataclass(frozen=True)
class TimerRow:
    label: str
    timer: TimerView
    clock: Countdown
    # running | warning | breached | stopped
    state: str


def timer_rows(timers: list[TimerView], now: datetime) -> list[TimerRow]:
    rows = []
    for t in timers:
        clock = countdown(t.due_at, now, stopped_at=t.stopped_at)
        if t.stopped_at is not None:
            state = "stopped"
        elif clock.late or t.breached_at is not None:
            state = "breached"
        elif t.warned_at is not None or (t.warn_at is not None and t.warn_at <= now):
            state = "warning"
        else:
            state = "running"
        rows.append(TimerRow(TIMER_LABELS.get(t.kind, t.kind), t, clock, state))
    return rows


@router.get("/incidents")
async def incident_list(
    request: Request,
    viewer: CurrentViewer,
    state: str = "unresolved",
    tenant: str | None = None,
    kind: str | None = None,
    offset: int = 0,
) -> Response:
    state = state if state in STATES else "unresolved"
    offset = max(offset, 0)
    async with request.app.state.db.session() as s:
        rows = await incidents.list_incidents(
            s,
            viewer=viewer,
            state=state,
            tenant=tenant if viewer.is_staff else None,
            kind=kind or None,
            limit=PAGE_SIZE,
            offset=offset,
        )
        tenants = await tenant_slugs(s, viewer)
    filters = {"state": state, "tenant": tenant, "kind": kind}
    return page(
        request,
        "incidents/list.html",
        viewer,
        rows=rows,
        filters=filters,
        states=STATES,
        kinds=KINDS,
        tenants=tenants,
        links=pager("/incidents", filters, offset, len(rows)),
    )


@router.get("/incidents/{incident_id}")
async def incident_page(
    request: Request,
    viewer: CurrentViewer,
    incident_id: uuid.UUID,
    outcome: Outcome,
) -> Response:
    async with request.app.state.db.session() as s:
        detail = await incidents.visible_detail(s, incident_id, viewer)
    now = utcnow()
    return page(
        request,
        "incidents/detail.html",
        viewer,
        incident=detail,
        timers=timer_rows(detail.timers, now),
        note_kinds=[(k, NOTE_LABELS.get(k, k)) for k in NOTE_KINDS],
        **outcome,
    )


@router.post("/incidents/{incident_id}/ack")
async def ack(request: Request, viewer: StaffViewer, incident_id: uuid.UUID) -> Response:
    done = incidents.act(request, viewer, incident_id, "ack")
    return await back_after(f"/incidents/{incident_id}", done)


@router.post("/incidents/{incident_id}/resolve")
async def resolve(
    request: Request, viewer: StaffViewer, incident_id: uuid.UUID, note: Text = ""
) -> Response:
    done = incidents.act(request, viewer, incident_id, "resolve", note.strip())
    return await back_after(f"/incidents/{incident_id}", done)


@router.post("/incidents/{incident_id}/notes")
async def add_note(
    request: Request,
    viewer: StaffViewer,
    incident_id: uuid.UUID,
    text: Text = "",
    kind: Annotated[str, Form(max_length=24)] = "note",
) -> Response:
    done = incidents.act(request, viewer, incident_id, "note", text.strip(), kind)
    return await back_after(f"/incidents/{incident_id}", done)
