"""The import audit pages: the list (with new files polled in), one import, its downloads.

The pages call the API's functions (`imports`), so a page and `/api/imports` read and
refuse alike: the same scope, the same 404 for another tenant's import, the same
audited downloads, the same command for a decision.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common.db.models import Import
from courier.console import imports, views
from courier.console.access import CurrentViewer, StaffViewer, Viewer, scope
from courier.console.deps import Session
from courier.console.render import back_after, link, page, query

router = APIRouter(include_in_schema=False)

LIST_PAGE = 50
RECORDS_PAGE = 50


async def _rows(
    s: AsyncSession, viewer: Viewer, filters: views.ImportFilters, page_number: int
) -> tuple[list[views.ImportSummary], bool]:
    """One page of the list, and whether another follows."""
    rows = await views.list_imports(
        s,
        **filters.model_dump(),
        scope=scope(viewer, Import.tenant_id),
        limit=LIST_PAGE + 1,
        offset=(page_number - 1) * LIST_PAGE,
    )
    return rows[:LIST_PAGE], len(rows) > LIST_PAGE


@router.get("/imports", response_class=HTMLResponse)
async def import_list(
    request: Request,
    s: Session,
    viewer: CurrentViewer,
    filters: Annotated[views.ImportFilters, Query()],
    page_number: Annotated[int, Query(alias="page", ge=1)] = 1,
) -> Response:
    rows, more = await _rows(s, viewer, filters, page_number)
    tenants, feeds = await views.filter_choices(s, viewer.tenant_id)
    filter_query = query(**filters.model_dump(mode="json"))
    return page(
        request,
        "imports/list.html",
        viewer,
        rows=rows,
        filters=filters,
        tenants=tenants,
        feeds=feeds,
        statuses=views.STATUSES,
        filter_query=filter_query,
        page_number=page_number,
        more=more,
        # New files arrive at the top: only the first page polls for them.
        live=page_number == 1,
    )


@router.get("/imports/rows", response_class=HTMLResponse)
async def import_rows(
    request: Request,
    s: Session,
    viewer: CurrentViewer,
    filters: Annotated[views.ImportFilters, Query()],
) -> Response:
    """The first page's table body, polled by the list page so new files appear."""
    rows, _ = await _rows(s, viewer, filters, 1)
    return page(
        request,
        "imports/_rows.html",
        viewer,
        rows=rows,
        filter_query=query(**filters.model_dump(mode="json")),
        live=True,
    )


@router.get("/imports/{import_id}", response_class=HTMLResponse)
async def import_page(
    import_id: uuid.UUID,
    request: Request,
    s: Session,
    viewer: CurrentViewer,
    q: Annotated[views.RecordFilters, Query()],
) -> Response:
    action, after, before, row, last = q.action, q.after, q.before, q.row, q.last
    imp = await imports.visible_import(s, viewer, import_id)
    detail = await views.import_detail(
        s,
        imp,
        action=action,
        after=imports.cursor(after, "after"),
        before=imports.cursor(before, "before"),
        from_row=row,
        last=last,
        limit=RECORDS_PAGE,
    )
    here = f"/imports/{imp.id}"
    return page(
        request,
        "imports/detail.html",
        viewer,
        imp=detail,
        here=here,
        action=action,
        actions=views.ACTIONS,
        row=row,
        at_start=not (after or before or row or last),
        link=lambda **cursor: link(here, action=action, **cursor),
        held=imp.status == "awaiting_approval",
        notice=q.notice,
        problem=q.problem,
    )


@router.get("/imports/{import_id}/file")
async def original_file(
    import_id: uuid.UUID, request: Request, viewer: CurrentViewer
) -> StreamingResponse:
    return await imports.download_original(request, viewer, import_id)


@router.get("/imports/{import_id}/errors.csv")
async def errors_file(
    import_id: uuid.UUID, request: Request, viewer: CurrentViewer
) -> StreamingResponse:
    return await imports.download_errors(request, viewer, import_id)


@router.get("/imports/{import_id}/result")
async def result_file(
    import_id: uuid.UUID, request: Request, viewer: CurrentViewer
) -> StreamingResponse:
    return await imports.download_result(request, viewer, import_id)


async def _decide(
    request: Request, viewer: Viewer, import_id: uuid.UUID, decision: imports.Decision
) -> Response:
    """Send the decision, then back to the import with what happened (303: no re-post)."""
    done = imports.decide(request, viewer, import_id, decision)
    return await back_after(f"/imports/{import_id}", done, error="problem")


@router.post("/imports/{import_id}/approve")
async def approve(import_id: uuid.UUID, request: Request, viewer: StaffViewer) -> Response:
    return await _decide(request, viewer, import_id, "approve")


@router.post("/imports/{import_id}/reject")
async def reject(import_id: uuid.UUID, request: Request, viewer: StaffViewer) -> Response:
    return await _decide(request, viewer, import_id, "reject")
