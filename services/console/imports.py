"""The import audit over HTTP: list, detail, the original file, and decisions on held imports.

A decision is sent to the importer as a command (which owns applying files), so
the console never writes an import or domain data itself.
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
from courier.common.storage import NotFound
from courier.console import views
from courier.console.deps import Session

router = APIRouter(prefix="/api/imports", tags=["imports"])


class DecisionIn(BaseModel):
    by: str = "console"


class DecisionOut(BaseModel):
    import_id: uuid.UUID
    status: str
    decision: str
    message: str


@router.get("", response_model=list[views.ImportSummary])
async def list_imports(
    s: Session,
    tenant: str | None = None,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[views.ImportSummary]:
    return await views.list_imports(s, tenant=tenant, status=status, limit=limit, offset=offset)


async def _get(s: AsyncSession, import_id: uuid.UUID) -> Import:
    imp = await views.get_import(s, import_id)
    if imp is None:
        raise HTTPException(404, f"no import {import_id}")
    return imp


@router.get("/{import_id}", response_model=views.ImportDetail)
async def get_import(
    import_id: uuid.UUID,
    s: Session,
    action: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> views.ImportDetail:
    imp = await _get(s, import_id)
    return await views.import_detail(s, imp, action=action, limit=limit, offset=offset)


@router.get("/{import_id}/file")
async def download(import_id: uuid.UUID, s: Session, request: Request) -> StreamingResponse:
    imp = await _get(s, import_id)
    storage = request.app.state.storage
    try:
        info = await storage.stat(imp.storage_key)
    except NotFound as exc:
        raise HTTPException(410, "the original file is no longer in storage") from exc
    return StreamingResponse(
        storage.get(imp.storage_key),
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{imp.file_name}"',
            "Content-Length": str(info.size),
            "X-Checksum-Sha256": imp.sha256,
        },
    )


async def _decide(
    request: Request, import_id: uuid.UUID, decision: Literal["approve", "reject"], by: str
) -> DecisionOut:
    db = request.app.state.db
    try:
        async with db.transaction() as s:
            await decisions.request(s, import_id, decision, by)
    except decisions.DecisionRefused as exc:
        raise HTTPException(404 if exc.missing else 409, str(exc)) from exc
    verb = "approval" if decision == "approve" else "rejection"
    return DecisionOut(
        import_id=import_id,
        status="awaiting_approval",
        decision=decision,
        message=f"{verb} sent; the importer carries it out (follow the import's status)",
    )


@router.post("/{import_id}/approve", response_model=DecisionOut, status_code=202)
async def approve(import_id: uuid.UUID, request: Request, body: DecisionIn | None = None):
    return await _decide(request, import_id, "approve", (body or DecisionIn()).by)


@router.post("/{import_id}/reject", response_model=DecisionOut, status_code=202)
async def reject(import_id: uuid.UUID, request: Request, body: DecisionIn | None = None):
    return await _decide(request, import_id, "reject", (body or DecisionIn()).by)
