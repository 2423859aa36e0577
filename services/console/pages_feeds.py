"""Feed pages: the list with next windows and last files, and one feed's timeline."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from courier.console import feeds, timeline
from courier.console.access import CurrentViewer
from courier.console.deps import Session
from courier.console.paging import ByTenant, tenant_list
from courier.console.render import page

PAGE = 100

router = APIRouter(include_in_schema=False)


@router.get("/feeds", response_class=HTMLResponse)
async def feed_list(
    request: Request, s: Session, viewer: CurrentViewer, q: ByTenant
) -> HTMLResponse:
    return await tenant_list(
        request, s, viewer, q, feeds.list_feeds, "feeds/list.html", PAGE, local=timeline.local_text
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
