"""Incidents in the console and the CLI: views, the actions people take (acknowledge,
resolve, note), and the JSON API routes for them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from courier.common.db.base import utcnow
from courier.common.db.engine import Database
from courier.common.db.models_incidents import (
    NOTE_KINDS,
    Incident,
    Notification,
    SlaPolicy,
)
from courier.common.settings import get_settings


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


class IncidentDetail(IncidentSummary):
    details: dict[str, Any]
    notes: list[NoteView]
    timers: list[TimerView]
    deliveries: list[DeliveryView]


class NoteIn(BaseModel):
    text: str = Field(min_length=1)
    kind: str = Field(default="note", pattern=f"^({'|'.join(NOTE_KINDS)})$")
    author: str = "console"


class ActorIn(BaseModel):
    by: str = "console"
    note: str | None = None


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
    incident = await session.scalar(
        select(Incident)
        .where(Incident.id == incident_id)
        .options(selectinload(Incident.notes), selectinload(Incident.timers))
    )
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
    )


async def act(
    db: Database, incident_id: uuid.UUID, action: str, now: datetime, by: str, text: str = "",
    kind: str = "note",
) -> IncidentDetail:  # fmt: skip
    """acknowledge | resolve | note, in one transaction; returns the incident after it."""
    async with db.transaction() as session:
        incident = await _load(session, incident_id)
        if action == "acknowledge":
            if not incident.acknowledge(now, by):
                raise IncidentError(
                    f"incident is {incident.state}; only open ones are acknowledged"
                )
        elif action == "resolve":
            if not incident.resolve(now, by, text or None):
                raise IncidentError("incident is resolved already")
        else:
            policy = SlaPolicy.from_settings(get_settings())
            incident.add_note(now, by, text, kind, policy)
    async with db.session() as session:
        return await incident_detail(session, incident_id)


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


async def _act(request: Request, incident_id: uuid.UUID, action: str, **kw: Any) -> IncidentDetail:
    try:
        return await act(request.app.state.db, incident_id, action, utcnow(), **kw)
    except IncidentError as exc:
        code = 404 if str(exc).startswith("no incident") else 409
        raise HTTPException(code, str(exc)) from exc
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc


@router.post("/{incident_id}/ack", response_model=IncidentDetail)
async def api_ack(request: Request, incident_id: uuid.UUID, body: ActorIn) -> IncidentDetail:
    return await _act(request, incident_id, "acknowledge", by=body.by)


@router.post("/{incident_id}/resolve", response_model=IncidentDetail)
async def api_resolve(request: Request, incident_id: uuid.UUID, body: ActorIn) -> IncidentDetail:
    return await _act(request, incident_id, "resolve", by=body.by, text=body.note or "")


@router.post("/{incident_id}/notes", response_model=IncidentDetail)
async def api_note(request: Request, incident_id: uuid.UUID, body: NoteIn) -> IncidentDetail:
    return await _act(request, incident_id, "note", by=body.author, text=body.text, kind=body.kind)
