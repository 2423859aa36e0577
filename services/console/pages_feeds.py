"""Feed pages: the list with next windows and last files, and one feed's timeline."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from courier.console import feeds, timeline
from courier.console.access import CurrentViewer
from courier.console.deps import Session
from courier.console.render import page

PAGE = 100

router = APIRouter(include_in_schema=False)


@router.get("/feeds", response_class=HTMLResponse)
async def feed_list(
    request: Request,
    s: Session,
    viewer: CurrentViewer,
    tenant: str | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    rows = await feeds.list_feeds(s, viewer, tenant=tenant or None, limit=PAGE, offset=offset)
    return page(
        request,
        "feeds/list.html",
        viewer,
        feeds=rows,
        tenant=tenant or "",
        offset=offset,
        page_size=PAGE,
        local=timeline.local_text,
    )


@router.get("/feeds/{feed_id}", response_class=HTMLResponse)
async def feed_page(
    request: Request, feed_id: uuid.UUID, s: Session, viewer: CurrentViewer
) -> HTMLResponse:
    detail, picture = await feeds.feed_detail(s, viewer, feed_id)
    return page(
        request,
        "feeds/detail.html",
        viewer,
        feed=detail,
        # Safe to inline: the renderer escapes every piece of text it draws.
        svg=Markup(timeline.render(picture)),
        local=timeline.local_text,
    )
