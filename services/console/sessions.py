"""The SFTP session audit in the console (pages and API) and `courier gateway sessions`.

Audit lines name their tenant by slug and keep no foreign keys (a line outlives its
account), so a customer sees a session when one of its lines is their tenant's; the CLI
passes no viewer and sees all. Another tenant's session answers 404 as a missing one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import ColumnElement, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common.db.models_gateway import SessionEvent
from courier.console.access import CurrentViewer, Viewer, found_or_404, scope_slug
from courier.console.deps import Session


class AuditLine(BaseModel):
    at: datetime
    kind: str
    reason: str | None = None
    path: str | None = None
    bytes: int | None = None


class SessionSummary(BaseModel):
    session: str
    peer: str
    username: str | None
    tenant: str | None
    started_at: datetime
    last_at: datetime
    # succeeded | failed | banned
    outcome: str
    uploads: int
    downloads: int
    bytes_in: int
    bytes_out: int
    failure: str | None = None
    events: list[AuditLine] = []


def _summarise(session_id: str, lines: list[SessionEvent], with_events: bool) -> SessionSummary:
    kinds = [e.kind for e in lines]
    outcome = (
        "banned" if "banned" in kinds else "succeeded" if "login_succeeded" in kinds else "failed"
    )
    failures = [e.reason for e in lines if e.kind == "login_failed"]
    named = [e for e in lines if e.username]
    return SessionSummary(
        session=session_id,
        peer=lines[0].peer,
        username=named[-1].username if named else None,
        tenant=next((e.tenant for e in reversed(lines) if e.tenant), None),
        started_at=lines[0].at,
        last_at=lines[-1].at,
        outcome=outcome,
        uploads=kinds.count("upload"),
        downloads=kinds.count("download"),
        bytes_in=sum(e.bytes or 0 for e in lines if e.kind == "upload"),
        bytes_out=sum(e.bytes or 0 for e in lines if e.kind == "download"),
        failure=failures[-1] if failures else None,
        events=[
            AuditLine(at=e.at, kind=e.kind, reason=e.reason, path=e.path, bytes=e.bytes)
            for e in lines
        ]
        if with_events
        else [],
    )


def _visible(viewer: Viewer | None) -> ColumnElement[bool]:
    return scope_slug(viewer, SessionEvent.tenant) if viewer is not None else true()


async def list_sessions(
    s: AsyncSession,
    *,
    viewer: Viewer | None = None,
    tenant: str | None = None,
    username: str | None = None,
    peer: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[SessionSummary]:
    """Most recent sessions first, each folded from its audit lines."""
    recent = select(SessionEvent.session).where(_visible(viewer)).group_by(SessionEvent.session)
    if tenant:
        recent = recent.where(SessionEvent.tenant == tenant)
    if username:
        recent = recent.where(SessionEvent.username == username)
    if peer:
        recent = recent.where(SessionEvent.peer == peer)
    ids = list(
        await s.scalars(
            recent.order_by(func.max(SessionEvent.id).desc()).limit(limit).offset(offset)
        )
    )
    if not ids:
        return []
    lines = await s.scalars(
        select(SessionEvent).where(SessionEvent.session.in_(ids)).order_by(SessionEvent.id)
    )
    grouped: dict[str, list[SessionEvent]] = {i: [] for i in ids}
    for line in lines:
        grouped[line.session].append(line)
    return [_summarise(i, grouped[i], with_events=False) for i in ids]


async def get_session(
    s: AsyncSession, session_id: str, viewer: Viewer | None = None
) -> SessionSummary | None:
    """The session with every audit line, if the viewer may see it."""
    seen = await s.scalar(
        select(SessionEvent.id).where(SessionEvent.session == session_id, _visible(viewer)).limit(1)
    )
    if seen is None:
        return None
    lines = list(
        await s.scalars(
            select(SessionEvent).where(SessionEvent.session == session_id).order_by(SessionEvent.id)
        )
    )
    return _summarise(session_id, lines, with_events=True) if lines else None


router = APIRouter(prefix="/api/gateway", tags=["gateway"])


@router.get("/sessions", response_model=list[SessionSummary])
async def sessions(
    s: Session,
    viewer: CurrentViewer,
    tenant: str | None = None,
    username: str | None = None,
    peer: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[SessionSummary]:
    return await list_sessions(
        s, viewer=viewer, tenant=tenant, username=username, peer=peer, limit=limit, offset=offset
    )


@router.get("/sessions/{session_id}", response_model=SessionSummary)
async def session_detail(session_id: str, s: Session, viewer: CurrentViewer) -> SessionSummary:
    return found_or_404(await get_session(s, session_id, viewer), "session")
