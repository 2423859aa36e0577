"""Incidents in the console and the CLI: views, and the JSON API routes to read them and
to act on them.

An action (acknowledge, resolve, note) is sent to the monitor as a command, since the
monitor owns incidents and their SLA timers; the console never changes an incident itself.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common import incident_actions
from courier.common.db.models_incidents import Incident, Notification
from courier.common.events import NoteKind


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
    warned_at: datetime | None
    breached_at: datetime | None
    stopped_at: datetime | None


class DeliveryView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    channel: str
    recipient_name: str
    level: int
    status: str
    attempts: int
    error: str | None
    created_at: datetime
    sent_at: datetime | None


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


class NoteIn(BaseModel):
    text: str = Field(min_length=1)
    kind: NoteKind = "note"
    author: str = Field(default="console", min_length=1, max_length=100)


class ActorIn(BaseModel):
    by: str = Field(default="console", min_length=1, max_length=100)
    note: str | None = None


class ActionOut(BaseModel):
    incident_id: uuid.UUID
    action: str
    # The incident's state when the action was sent (the monitor changes it).
    state: str
    message: str


class IncidentError(Exception):
    pass


async def list_incidents(
    session: AsyncSession,
    *,
    state: str | None = None,
    tenant: str | None = None,
    kind: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[IncidentSummary]:
    query = select(Incident).order_by(Incident.last_seen_at.desc()).limit(limit).offset(offset)
    if state == "unresolved":
        query = query.where(Incident.state != "resolved")
    elif state:
        query = query.where(Incident.state == state)
    if tenant:
        query = query.where(Incident.tenant == tenant)
    if kind:
        query = query.where(Incident.kind == kind)
    return [IncidentSummary.model_validate(i) for i in await session.scalars(query)]


async def _load(session: AsyncSession, incident_id: uuid.UUID) -> Incident:
    incident = await incident_actions.find(session, incident_id)
    if incident is None:
        raise IncidentError(f"no incident {incident_id}")
    return incident


async def incident_detail(session: AsyncSession, incident_id: uuid.UUID) -> IncidentDetail:
    incident = await _load(session, incident_id)
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
        timers=[TimerView.model_validate(t) for t in incident.timers],
        deliveries=[DeliveryView.model_validate(d) for d in deliveries],
        pending_actions=[
            PendingActionView.model_validate(p)
            for p in await incident_actions.pending(session, incident)
        ],
    )


router = APIRouter(prefix="/api/incidents", tags=["incidents"])


@router.get("", response_model=list[IncidentSummary])
async def api_list(
    request: Request,
    state: str | None = None,
    tenant: str | None = None,
    kind: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[IncidentSummary]:
    async with request.app.state.db.session() as session:
        return await list_incidents(
            session, state=state, tenant=tenant, kind=kind, limit=limit, offset=offset
        )


@router.get("/{incident_id}", response_model=IncidentDetail)
async def api_show(request: Request, incident_id: uuid.UUID) -> IncidentDetail:
    async with request.app.state.db.session() as session:
        try:
            return await incident_detail(session, incident_id)
        except IncidentError as exc:
            raise HTTPException(404, str(exc)) from exc


async def _act(
    request: Request,
    incident_id: uuid.UUID,
    action: incident_actions.Action,
    by: str,
    text: str = "",
    note_kind: NoteKind = "note",
) -> ActionOut:
    try:
        async with request.app.state.db.transaction() as session:
            await incident_actions.request(session, incident_id, action, by, text, note_kind)
            state = (await _load(session, incident_id)).state
    except incident_actions.ActionRefused as exc:
        raise HTTPException(404 if exc.missing else 409, str(exc)) from exc
    return ActionOut(
        incident_id=incident_id,
        action=action,
        state=state,
        message=(
            f"{incident_actions.WHAT[action]} sent; the monitor carries it out "
            "(follow the incident)"
        ),
    )


@router.post("/{incident_id}/ack", response_model=ActionOut, status_code=202)
async def api_ack(request: Request, incident_id: uuid.UUID, body: ActorIn) -> ActionOut:
    return await _act(request, incident_id, "ack", body.by)


@router.post("/{incident_id}/resolve", response_model=ActionOut, status_code=202)
async def api_resolve(request: Request, incident_id: uuid.UUID, body: ActorIn) -> ActionOut:
    return await _act(request, incident_id, "resolve", body.by, body.note or "")


@router.post("/{incident_id}/notes", response_model=ActionOut, status_code=202)
async def api_note(request: Request, incident_id: uuid.UUID, body: NoteIn) -> ActionOut:
    return await _act(request, incident_id, "note", body.author, body.text, body.kind)
