"""JSON API of the console."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common.db.engine import Database
from courier.common.storage import NotFound, Storage
from courier.console import exports, incidents, sessions, views


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.db.session() as s:
        yield s


Session = Annotated[AsyncSession, Depends(_session)]


def create_app(db: Database, storage: Storage) -> FastAPI:
    app = FastAPI(title="Courier console", version="1")
    app.state.db = db
    app.state.storage = storage
    app.include_router(exports.router)
    app.include_router(incidents.router)
    app.include_router(sessions.router)

    @app.get("/api/imports", response_model=list[views.ImportSummary])
    async def list_imports(
        s: Session,
        tenant: str | None = None,
        status: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[views.ImportSummary]:
        return await views.list_imports(s, tenant=tenant, status=status, limit=limit, offset=offset)

    @app.get("/api/imports/{import_id}", response_model=views.ImportDetail)
    async def get_import(
        import_id: uuid.UUID,
        s: Session,
        action: str | None = None,
        limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> views.ImportDetail:
        imp = await views.get_import(s, import_id)
        if imp is None:
            raise HTTPException(404, f"no import {import_id}")
        return await views.import_detail(s, imp, action=action, limit=limit, offset=offset)

    @app.get("/api/imports/{import_id}/file")
    async def download(import_id: uuid.UUID, s: Session) -> StreamingResponse:
        imp = await views.get_import(s, import_id)
        if imp is None:
            raise HTTPException(404, f"no import {import_id}")
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

    return app
