"""JSON API of the console."""

from __future__ import annotations

from fastapi import FastAPI

from courier.common.db.engine import Database
from courier.common.storage import Storage
from courier.console import imports


def create_app(db: Database, storage: Storage) -> FastAPI:
    app = FastAPI(title="Courier console", version="1")
    app.state.db = db
    app.state.storage = storage
    app.include_router(imports.router)
    return app
