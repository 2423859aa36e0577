"""Gateway session pages: who connected from where, what they did, and each line of it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from courier.console import sessions
from courier.console.access import CurrentViewer, found_or_404
from courier.console.deps import Session
from courier.console.paging import PAGE_SIZE, pager
from courier.console.render import page

router = APIRouter(include_in_schema=False)


@router.get("/sessions", response_class=HTMLResponse)
async def session_list(
    request: Request,
    s: Session,
    viewer: CurrentViewer,
    tenant: str | None = None,
    username: str | None = None,
    peer: str | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    filters = {"tenant": tenant or "", "username": username or "", "peer": peer or ""}
    rows = await sessions.list_sessions(
        s,
        viewer=viewer,
        tenant=tenant or None,
        username=username or None,
        peer=peer or None,
        limit=PAGE_SIZE,
        offset=offset,
    )
    return page(
        request,
        "sessions/list.html",
        viewer,
        sessions=rows,
        filters=filters,
        links=pager("/sessions", filters, offset, len(rows)),
    )


@router.get("/sessions/{session_id}", response_class=HTMLResponse)
async def session_page(
    request: Request, session_id: str, s: Session, viewer: CurrentViewer
) -> HTMLResponse:
    found = found_or_404(await sessions.get_session(s, session_id, viewer), "session")
    return page(request, "sessions/detail.html", viewer, session=found)
