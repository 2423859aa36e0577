"""The import audit over HTTP: list, detail, downloads, and decisions on held imports.

Every query is limited to the viewer's tenant (`access.scope`), so another tenant's
import answers 404 like a missing one. A decision is sent to the importer as a
command (it owns applying files), so the console never writes an import or domain
data itself; the command and the console audit line commit together. The page
routes (`pages_imports`) call the same functions.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common import decisions
from courier.common.db.models import Import
from courier.console import downloads, views
from courier.console.access import (
    CurrentViewer,
    StaffViewer,
    Viewer,
    audit,
    found_or_404,
    refused_as_http,
    scope,
)
from courier.console.deps import Session

router = APIRouter(prefix="/api/imports", tags=["imports"])

Decision = Literal["approve", "reject"]


class DecisionOut(BaseModel):
    import_id: uuid.UUID
    status: str
    decision: str
    message: str


@router.get("", response_model=list[views.ImportSummary])
async def list_imports(
    s: Session,
    viewer: CurrentViewer,
    filters: Annotated[views.ImportFilters, Query()],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[views.ImportSummary]:
    """Newest first. A customer sees their tenant's imports only, whatever `tenant` says."""
    return await views.list_imports(
        s, **filters.model_dump(), scope=scope(viewer, Import.tenant_id), limit=limit, offset=offset
    )


async def visible_import(s: AsyncSession, viewer: Viewer, import_id: uuid.UUID) -> Import:
    """The import if the viewer may see it; 404 alike for missing and another tenant's."""
    return found_or_404(
        await views.get_import(s, import_id, scope(viewer, Import.tenant_id)), "import"
    )


def cursor(text: str | None, name: str) -> tuple[int, int] | None:
    try:
        return views.parse_cursor(text)
    except ValueError as exc:
        raise HTTPException(422, f"{name} must look like 1234.0 (row number . seq)") from exc


@router.get("/{import_id}", response_model=views.ImportDetail)
async def get_import(
    import_id: uuid.UUID,
    s: Session,
    viewer: CurrentViewer,
    action: views.Action | None = None,
    after: Annotated[str | None, Query(description="next page: records after this cursor")] = None,
    before: Annotated[str | None, Query(description="previous page: records before it")] = None,
    row: Annotated[int | None, Query(ge=0, description="start at this row number")] = None,
    last: Annotated[bool, Query(description="the last page")] = False,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> views.ImportDetail:
    """The import and one page of its records (keyset: follow `next_after` / `prev_before`)."""
    imp = await visible_import(s, viewer, import_id)
    return await views.import_detail(
        s,
        imp,
        action=action,
        after=cursor(after, "after"),
        before=cursor(before, "before"),
        from_row=row,
        last=last,
        limit=limit,
    )


async def _import_for_download(request: Request, viewer: Viewer, import_id: uuid.UUID) -> Import:
    """Read in a session of its own, closed before the download's audit transaction
    (on SQLite an open session holds the write lock the audit needs)."""
    async with request.app.state.db.session() as s:
        return await visible_import(s, viewer, import_id)


async def download_original(
    request: Request, viewer: Viewer, import_id: uuid.UUID
) -> StreamingResponse:
    imp = await _import_for_download(request, viewer, import_id)
    return await downloads.stored_file(
        request,
        viewer,
        key=imp.storage_key,
        file_name=imp.file_name,
        what="original",
        target_type="import",
        target_id=imp.id,
        tenant_id=imp.tenant_id,
        sha256=imp.sha256,
    )


async def download_errors(
    request: Request, viewer: Viewer, import_id: uuid.UUID
) -> StreamingResponse:
    imp = await _import_for_download(request, viewer, import_id)
    return await downloads.generated_file(
        request,
        viewer,
        views.errors_csv(request.app.state.db, imp.id),
        file_name=views.errors_file_name(imp),
        what="errors",
        target_type="import",
        target_id=imp.id,
        tenant_id=imp.tenant_id,
    )


async def download_result(
    request: Request, viewer: Viewer, import_id: uuid.UUID
) -> StreamingResponse:
    imp = await _import_for_download(request, viewer, import_id)
    name = imp.result_key.rsplit("/", 1)[-1] if imp.result_key else f"{imp.file_name}.result.csv"
    return await downloads.stored_file(
        request,
        viewer,
        key=imp.result_key,
        file_name=name,
        what="result",
        target_type="import",
        target_id=imp.id,
        tenant_id=imp.tenant_id,
        media_type="text/csv; charset=utf-8",
    )


@router.get("/{import_id}/file", response_class=StreamingResponse)
async def original_file(
    import_id: uuid.UUID, viewer: CurrentViewer, request: Request
) -> StreamingResponse:
    """The exact file the partner sent (audited)."""
    return await download_original(request, viewer, import_id)


@router.get("/{import_id}/errors.csv", response_class=StreamingResponse)
async def errors_file(
    import_id: uuid.UUID, viewer: CurrentViewer, request: Request
) -> StreamingResponse:
    """The errored rows: row number, key and reason (audited)."""
    return await download_errors(request, viewer, import_id)


@router.get("/{import_id}/result", response_class=StreamingResponse)
async def result_file(
    import_id: uuid.UUID, viewer: CurrentViewer, request: Request
) -> StreamingResponse:
    """The result file the partner found in /outbound/results (audited)."""
    return await download_result(request, viewer, import_id)


async def decide(
    request: Request, viewer: Viewer, import_id: uuid.UUID, decision: Decision
) -> DecisionOut:
    """Stage the decision for the importer and audit it, in one transaction.

    404 when the import is missing (or not the viewer's); 409 with the reason when it is
    not held for a decision.
    """
    with refused_as_http("import", decisions.DecisionRefused):
        async with request.app.state.db.transaction() as s:
            command = await decisions.request(
                s, import_id, decision, viewer.name, tenant_id=viewer.tenant_id
            )
            audit(
                s,
                request,
                viewer,
                action=f"import.{decision}",
                tenant_id=command.tenant_id,
                target_type="import",
                target_id=import_id,
                summary=f"asked the importer to {decision} the held import",
            )
    verb = "approval" if decision == "approve" else "rejection"
    return DecisionOut(
        import_id=import_id,
        status="awaiting_approval",
        decision=decision,
        message=f"{verb} sent; the importer applies it (follow the import's status)",
    )


@router.post("/{import_id}/approve", response_model=DecisionOut, status_code=202)
async def approve(import_id: uuid.UUID, request: Request, viewer: StaffViewer) -> DecisionOut:
    """Apply the held change set as shown (support and admin; recorded under your name)."""
    return await decide(request, viewer, import_id, "approve")


@router.post("/{import_id}/reject", response_model=DecisionOut, status_code=202)
async def reject(import_id: uuid.UUID, request: Request, viewer: StaffViewer) -> DecisionOut:
    """Discard the held change set (support and admin; recorded under your name)."""
    return await decide(request, viewer, import_id, "reject")
