"""Incident pages: the list, and one incident with a live countdown for each SLA timer,
its history, who was told, and the actions on-call takes (acknowledge, resolve, note).

The links that SMS and e-mails carry (`{console_base_url}/incidents/{id}`) open the
detail page; a signed-out visit goes through sign-in and comes back to it. Actions are
the JSON API's (`incidents.act`): staged as commands for the monitor and audited.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common import incident_actions
from courier.common.db.base import utcnow
from courier.common.db.models import Tenant
from courier.common.db.models_incidents import NOTE_KINDS, PARTNER_KINDS, PLATFORM_KINDS
from courier.console import incidents
from courier.console.access import CurrentViewer, StaffViewer, Viewer, not_found
from courier.console.incidents import TimerView
from courier.console.render import page

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
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


# ---------------------------------------------------------------- shared by the pages


@dataclass(frozen=True)
class Countdown:
    """A clock as the server renders it; console.js then ticks it from `due_at`."""

    due_at: datetime
    text: str
    late: bool
    stopped: bool
    late_word: str = "breached"


def span(seconds: float) -> str:
    """`1d 2h 03m 04s`, as console.js writes it."""
    s = math.floor(abs(seconds))
    days, hours, minutes = s // 86400, s % 86400 // 3600, s % 3600 // 60
    return (f"{days}d " if days else "") + f"{hours}h {minutes:02d}m {s % 60:02d}s"


def countdown(
    due_at: datetime,
    now: datetime,
    *,
    stopped_at: datetime | None = None,
    late_word: str = "breached",
) -> Countdown:
    if stopped_at is not None:
        late = stopped_at > due_at
        text = f"stopped {span((stopped_at - due_at).total_seconds())} "
        text += "after the deadline" if late else "before the deadline"
        return Countdown(due_at, text, late, True, late_word)
    left = (due_at - now).total_seconds()
    if left > 0:
        return Countdown(due_at, f"{span(left)} left", False, False, late_word)
    return Countdown(due_at, f"{late_word} {span(left)} ago", True, False, late_word)


async def tenant_slugs(session: AsyncSession, viewer: Viewer) -> list[str]:
    """The tenants a staff viewer may filter by (a customer has only theirs: no filter)."""
    if not viewer.is_staff:
        return []
    return list(await session.scalars(select(Tenant.slug).order_by(Tenant.slug)))


def back(path: str, *, notice: str | None = None, error: str | None = None) -> Response:
    """303 to the page the form was on, with what became of the action."""
    query = urlencode({k: v for k, v in (("notice", notice), ("error", error)) if v})
    return RedirectResponse(f"{path}?{query}" if query else path, status_code=303)


def pager(path: str, filters: dict[str, str | None], offset: int, shown: int) -> dict[str, str]:
    """Links to the newer and older page of a list, keeping its filters."""
    kept = {k: v for k, v in filters.items() if v}
    links = {}
    if offset > 0:
        links["newer"] = f"{path}?{urlencode({**kept, 'offset': max(offset - PAGE_SIZE, 0)})}"
    if shown == PAGE_SIZE:
        links["older"] = f"{path}?{urlencode({**kept, 'offset': offset + PAGE_SIZE})}"
    return links


# ---------------------------------------------------------------- incidents


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
    notice: str | None = None,
    error: str | None = None,
) -> Response:
    async with request.app.state.db.session() as s:
        try:
            detail = await incidents.incident_detail(s, incident_id, viewer)
        except incidents.IncidentError as exc:
            raise not_found("incident") from exc
    now = utcnow()
    return page(
        request,
        "incidents/detail.html",
        viewer,
        incident=detail,
        timers=timer_rows(detail.timers, now),
        note_kinds=[(k, NOTE_LABELS.get(k, k)) for k in NOTE_KINDS],
        notice=notice,
        error=error,
    )


async def _act(
    request: Request,
    viewer: Viewer,
    incident_id: uuid.UUID,
    action: incident_actions.Action,
    text: str = "",
    note_kind: str = "note",
) -> Response:
    where = f"/incidents/{incident_id}"
    try:
        done = await incidents.act(request, viewer, incident_id, action, text, note_kind)
    except incidents.IncidentError as exc:
        raise not_found("incident") from exc
    except incident_actions.ActionRefused as exc:
        if exc.missing:
            raise not_found("incident") from exc
        return back(where, error=str(exc))
    return back(where, notice=done.message)


@router.post("/incidents/{incident_id}/ack")
async def ack(request: Request, viewer: StaffViewer, incident_id: uuid.UUID) -> Response:
    return await _act(request, viewer, incident_id, "ack")


@router.post("/incidents/{incident_id}/resolve")
async def resolve(
    request: Request, viewer: StaffViewer, incident_id: uuid.UUID, note: Text = ""
) -> Response:
    return await _act(request, viewer, incident_id, "resolve", note.strip())


@router.post("/incidents/{incident_id}/notes")
async def add_note(
    request: Request,
    viewer: StaffViewer,
    incident_id: uuid.UUID,
    text: Text = "",
    kind: Annotated[str, Form(max_length=24)] = "note",
) -> Response:
    return await _act(request, viewer, incident_id, "note", text.strip(), kind)
