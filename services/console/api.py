"""JSON API of the console: one router per area, sharing the app's database and storage."""

from __future__ import annotations

from fastapi import FastAPI

from courier.common.db.engine import Database
from courier.common.storage import Storage
from courier.console import exports, imports, incidents, sessions


def create_app(db: Database, storage: Storage) -> FastAPI:
    app = FastAPI(title="Courier console", version="1")
    app.state.db = db
    app.state.storage = storage
    app.include_router(imports.router)
    app.include_router(exports.router)
    app.include_router(incidents.router)
    app.include_router(sessions.router)
    return app
