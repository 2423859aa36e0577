"""Incidents in the console and the CLI: views, and the JSON API routes to read them and
to act on them.

An action (acknowledge, resolve, note) is sent to the monitor as a command, since the
monitor owns incidents and their SLA timers; the console never changes an incident itself.
Every query takes the viewer, so a customer sees their tenant's incidents only; the CLI
passes none and sees all.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import ColumnElement, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from courier.common import incident_actions
from courier.common.db.models_incidents import Incident, IncidentOccurrence, Notification
from courier.common.events import NoteKind
from courier.console.access import (
    CurrentViewer,
    StaffViewer,
    Viewer,
    audit,
    found_or_404,
    not_found,
    refused_as_http,
    scope_slug,
)

# What a provider's error may quote of a recipient: an e-mail address, a phone number.
_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_NUMBER = re.compile(r"\+?\d[\d ()-]{6,}\d")
# The most recent occurrences shown in an incident's history (a noisy cause folds thousands).
HISTORY_OCCURRENCES = 500


class NoteView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    author: str
    kind: str
    text: str


class TimerView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kind: str
    due_at: datetime
    warn_at: datetime | None = None
    warned_at: datetime | None
    breached_at: datetime | None
    stopped_at: datetime | None


class DeliveryView(BaseModel):
    """One message about the incident; the recipient by name, never their number or address."""

    model_config = ConfigDict(from_attributes=True)

    channel: str
    recipient_name: str
    level: int
    status: str
    attempts: int
    error: str | None
    created_at: datetime
    sent_at: datetime | None

    @field_validator("error")
    @classmethod
    def _no_recipient(cls, error: str | None) -> str | None:
        if error is None:
            return None
        return _NUMBER.sub("[number]", _ADDRESS.sub("[address]", error))


class HistoryEntry(BaseModel):
    """An occurrence folded into the incident, or a note on it (acknowledging and
    resolving leave notes too)."""

    at: datetime
    what: Literal["occurrence", "note"]
    kind: str | None = None
    author: str | None = None
    text: str


class IncidentSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str
    incident_class: str
    state: str
    tenant: str | None
    feed: str | None
    file_name: str | None
    summary: str
    occurrences: int
    first_seen_at: datetime
    last_seen_at: datetime
    acknowledged_by: str | None
    acknowledged_at: datetime | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None


class PendingActionView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    action: str
    by: str
    requested_at: datetime
    # False while the command waits in the outbox (the bus was not reachable).
    sent: bool


class IncidentDetail(IncidentSummary):
    details: dict[str, Any]
    notes: list[NoteView]
    timers: list[TimerView]
    deliveries: list[DeliveryView]
    # Actions people asked for that the monitor has not carried out yet.
    pending_actions: list[PendingActionView] = []
    # Occurrences (the latest HISTORY_OCCURRENCES) and notes, oldest first.
    history: list[HistoryEntry] = []


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=10_000)
    kind: NoteKind = "note"


class ActionIn(BaseModel):
    # A resolve's closing note (ignored by acknowledge).
    note: str | None = Field(default=None, max_length=10_000)


class ActionOut(BaseModel):
    incident_id: uuid.UUID
    action: str
    # The incident's state when the action was sent (the monitor changes it).
    state: str
    message: str


class IncidentError(Exception):
    pass


def _visible(viewer: Viewer | None) -> ColumnElement[bool]:
    return scope_slug(viewer, Incident.tenant) if viewer is not None else true()


async def list_incidents(
    session: AsyncSession,
    *,
    viewer: Viewer | None = None,
    state: str | None = None,
    tenant: str | None = None,
    kind: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[IncidentSummary]:
    query = (
        select(Incident)
        .where(_visible(viewer))
        .order_by(Incident.last_seen_at.desc(), Incident.id)
        .limit(limit)
        .offset(offset)
    )
    if state == "unresolved":
        query = query.where(Incident.state != "resolved")
    elif state and state != "all":
        query = query.where(Incident.state == state)
    if tenant:
        query = query.where(Incident.tenant == tenant)
    if kind:
        query = query.where(Incident.kind == kind)
    return [IncidentSummary.model_validate(i) for i in await session.scalars(query)]


async def _find(
    session: AsyncSession, incident_id: uuid.UUID, viewer: Viewer | None = None
) -> Incident | None:
    """The incident (notes and timers loaded) if the viewer may see it; another tenant's
    reads exactly as a missing one."""
    return await session.scalar(
        select(Incident)
        .where(Incident.id == incident_id, _visible(viewer))
        .options(selectinload(Incident.notes), selectinload(Incident.timers))
    )


async def _history(session: AsyncSession, incident: Incident) -> list[HistoryEntry]:
    occurrences = await session.scalars(
        select(IncidentOccurrence)
        .where(IncidentOccurrence.incident_id == incident.id)
        .order_by(IncidentOccurrence.seen_at.desc(), IncidentOccurrence.id.desc())
        .limit(HISTORY_OCCURRENCES)
    )
    entries = [HistoryEntry(at=o.seen_at, what="occurrence", text=o.summary) for o in occurrences]
    entries += [
        HistoryEntry(at=n.at, what="note", kind=n.kind, author=n.author, text=n.text)
        for n in incident.notes
    ]
    # Stable: an occurrence and the note it caused at the same instant keep that order.
    return sorted(entries, key=lambda e: (e.at, e.what != "occurrence"))


async def incident_detail(
    session: AsyncSession, incident_id: uuid.UUID, viewer: Viewer | None = None
) -> IncidentDetail:
    """Raises `IncidentError` when the incident is missing (or not the viewer's)."""
    incident = await _find(session, incident_id, viewer)
    if incident is None:
        raise IncidentError(f"no incident {incident_id}")
    deliveries = await session.scalars(
        select(Notification)
        .where(Notification.incident_id == incident_id)
        .order_by(Notification.created_at)
    )
    summary = IncidentSummary.model_validate(incident).model_dump()
    return IncidentDetail(
        **summary,
        details=incident.details,
        notes=[NoteView.model_validate(n) for n in incident.notes],
        timers=[
            TimerView.model_validate(t)
            for t in sorted(incident.timers, key=lambda t: (t.due_at, t.kind))
        ],
        deliveries=[DeliveryView.model_validate(d) for d in deliveries],
        pending_actions=[
            PendingActionView.model_validate(p)
            for p in await incident_actions.pending(session, incident)
        ],
        history=await _history(session, incident),
    )


async def act(
    request: Request,
    viewer: Viewer,
    incident_id: uuid.UUID,
    action: incident_actions.Action,
    text: str = "",
    note_kind: str = "note",
) -> ActionOut:
    """Stage the command as the viewer, with its audit line, in one transaction.

    404 when the incident is missing (or not the viewer's); 409 with the reason when it
    does not allow the action now.
    """
    with refused_as_http("incident", incident_actions.ActionRefused):
        async with request.app.state.db.transaction() as session:
            incident = found_or_404(await _find(session, incident_id, viewer), "incident")
            await incident_actions.request(
                session, incident_id, action, viewer.name, text, note_kind
            )
            what = incident_actions.WHAT[action]
            audit(
                session,
                request,
                viewer,
                action=f"incident.{action}",
                tenant_id=incident.tenant_id,
                target_type="incident",
                target_id=incident_id,
                summary=f"asked for the {what} of {incident.kind} incident"
                + (f" of {incident.tenant}" if incident.tenant else ""),
                details={"text": text, "note_kind": note_kind} if action != "ack" else {},
            )
            state = incident.state
    return ActionOut(
        incident_id=incident_id,
        action=action,
        state=state,
        message=f"{what} sent; the monitor carries it out (follow the incident)",
    )


async def visible_detail(
    session: AsyncSession, incident_id: uuid.UUID, viewer: Viewer
) -> IncidentDetail:
    """The incident's detail, or the 404 a missing one and another tenant's both answer."""
    try:
        return await incident_detail(session, incident_id, viewer)
    except IncidentError as exc:
        raise not_found("incident") from exc


router = APIRouter(prefix="/api/incidents", tags=["incidents"])


@router.get("", response_model=list[IncidentSummary])
async def api_list(
    request: Request,
    viewer: CurrentViewer,
    state: str | None = None,
    tenant: str | None = None,
    kind: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[IncidentSummary]:
    async with request.app.state.db.session() as session:
        return await list_incidents(
            session,
            viewer=viewer,
            state=state,
            tenant=tenant,
            kind=kind,
            limit=limit,
            offset=offset,
        )


@router.get("/{incident_id}", response_model=IncidentDetail)
async def api_show(
    request: Request, viewer: CurrentViewer, incident_id: uuid.UUID
) -> IncidentDetail:
    async with request.app.state.db.session() as session:
        return await visible_detail(session, incident_id, viewer)


@router.post("/{incident_id}/ack", response_model=ActionOut, status_code=202)
async def api_ack(request: Request, viewer: StaffViewer, incident_id: uuid.UUID) -> ActionOut:
    return await act(request, viewer, incident_id, "ack")


@router.post("/{incident_id}/resolve", response_model=ActionOut, status_code=202)
async def api_resolve(
    request: Request, viewer: StaffViewer, incident_id: uuid.UUID, body: ActionIn | None = None
) -> ActionOut:
    return await act(request, viewer, incident_id, "resolve", (body or ActionIn()).note or "")


@router.post("/{incident_id}/notes", response_model=ActionOut, status_code=202)
async def api_note(
    request: Request, viewer: StaffViewer, incident_id: uuid.UUID, body: NoteIn
) -> ActionOut:
    return await act(request, viewer, incident_id, "note", body.text, body.kind)
