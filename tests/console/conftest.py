"""The console under test: the app in process, and imports made by the importer's own handler.

A file is stored and recorded as the gateway does, then handled by the importer, so
the pages show real imports, records and result files.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from courier.cli import provision
from courier.common.areas import area_key
from courier.common.db.base import utcnow
from courier.common.db.engine import Database
from courier.common.db.models import Import, Tenant
from courier.common.db.models_exports import Export
from courier.common.events import ExportDelivered
from courier.common.received import event_for, record_file
from courier.common.settings import Settings
from courier.common.storage import Storage
from courier.common.uow import UnitOfWork
from courier.console.api import create_app
from courier.importer.apply import handle
from courier.importer.spec import FeedSpec
from courier.monitor.pickups import watch_delivery
from tests.support.staged import staged
from tests.support.tenant_objects import build_export

Send = Callable[..., Awaitable[Import]]
DeclareFeed = Callable[..., Awaitable[None]]


@pytest.fixture
def app(db: Database, storage: Storage, settings: Settings) -> FastAPI:
    return create_app(db, storage, settings)


@pytest.fixture
async def other_tenant(db: Database) -> Tenant:
    return await provision.ensure_tenant(db, "globex", "Globex Corp", "Europe/London")


@pytest.fixture
def feed(db: Database, tenant: Tenant) -> DeclareFeed:
    """Declare a feed as `courier feeds apply` would (for `tenant` unless `to=` another)."""

    async def _feed(
        name: str, kind: str, pattern: str, to: Tenant | None = None, **options: Any
    ) -> None:
        spec = FeedSpec.model_validate({"name": name, "kind": kind, "pattern": pattern, **options})
        await provision.upsert_feed(
            db, to or tenant, name, kind, pattern, spec.model_dump(mode="json")
        )

    return _feed


@pytest.fixture
def send(db: Database, storage: Storage, tenant: Tenant) -> Send:
    """Store and record a file as the gateway does, import it; returns the import."""

    async def _send(name: str, data: bytes, to: Tenant | None = None) -> Import:
        owner = to or tenant
        key = area_key(owner.slug, "inbound", f"{uuid.uuid4().hex[:6]}-{name}")
        await storage.put(key, data)
        row = await record_file(db, storage, owner, name, key, source="api")
        event = event_for(row, owner)
        await handle(event, UnitOfWork(db, storage))
        async with db.session() as s:
            imp = await s.scalar(select(Import).where(Import.file_id == event.file_id))
        assert imp is not None, f"{name} was not imported"
        return imp

    return _send


@pytest.fixture
def watched_export(db: Database, storage: Storage) -> Callable[[Tenant], Awaitable[Export]]:
    """An export built by the exporter and placed in the tenant's pickup area, watched by
    the monitor (from the exporter's `courier.export.delivered`) until it is collected."""

    async def _export(owner: Tenant) -> Export:
        export = await build_export(db, storage, owner)
        for event in await staged(db, ExportDelivered.subject):
            if isinstance(event, ExportDelivered) and event.export_id == export.id:
                assert await watch_delivery(db, event, utcnow())
        return export

    return _export
