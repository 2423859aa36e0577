"""Drop files as the gateway would (stored, recorded) and hand them to the importer."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from courier.cli import provision
from courier.common.areas import area_key
from courier.common.clock import ManualClock
from courier.common.db.engine import Database
from courier.common.db.models import Import, ImportRecord, Tenant
from courier.common.events import FileReceived
from courier.common.received import event_for, record_file
from courier.common.storage import Storage
from courier.common.uow import UnitOfWork
from courier.importer.apply import handle
from courier.importer.spec import FeedSpec
from tests.support.pgp_fixtures import (  # noqa: F401
    partner_gpg,
    pgp_settings,
    stranger_gpg,
    tenant_keys,
    tenant_with_keys,
)

Drop = Callable[..., Awaitable[FileReceived]]
Send = Callable[..., Awaitable[Import]]


@pytest.fixture
def drop(db: Database, storage: Storage, tenant: Tenant) -> Drop:
    """Store and record a file; returns the event that announces it (not yet handled)."""

    async def _drop(name: str, data: bytes, to: Tenant | None = None) -> FileReceived:
        owner = to or tenant
        key = area_key(owner.slug, "inbound", f"{uuid.uuid4().hex[:6]}-{name}")
        await storage.put(key, data)
        row = await record_file(db, storage, owner, name, key, source="api")
        return event_for(row, owner)

    return _drop


@pytest.fixture
def send(db: Database, storage: Storage, drop: Drop) -> Callable[..., Awaitable[Import]]:
    """Drop a file and import it; returns the import."""

    async def _send(name: str, data: bytes, to: Tenant | None = None) -> Import:
        event = await drop(name, data, to)
        await handle(event, UnitOfWork(db, storage))
        return await import_of(db, event.file_id)

    return _send


@pytest.fixture
def clock() -> ManualClock:
    """The importer's time for holds and apply windows (a module may start it elsewhere)."""
    return ManualClock(datetime(2026, 12, 1, 10, 0, tzinfo=UTC))


@pytest.fixture
def arrive(db: Database, storage: Storage, drop: Drop, clock: ManualClock) -> Send:
    """Drop a file and import it at the clock's time; returns the import."""

    async def _arrive(name: str, data: bytes) -> Import:
        event = await drop(name, data)
        await handle(event, UnitOfWork(db, storage, clock))
        return await import_of(db, event.file_id)

    return _arrive


async def import_of(db: Database, file_id: uuid.UUID) -> Import:
    async with db.session() as s:
        imp = await s.scalar(select(Import).where(Import.file_id == file_id))
        assert imp is not None, f"file {file_id} was not imported"
        return imp


async def load_import(db: Database, import_id: uuid.UUID) -> Import:
    async with db.session() as s:
        imp = await s.get(Import, import_id)
        assert imp is not None
        return imp


async def records(db: Database, imp: Import) -> list[ImportRecord]:
    async with db.session() as s:
        return list(
            await s.scalars(
                select(ImportRecord)
                .where(ImportRecord.import_id == imp.id)
                .order_by(ImportRecord.row_number, ImportRecord.record_key)
            )
        )


@pytest.fixture
def feed(db: Database, tenant: Tenant) -> Callable[..., Awaitable[None]]:
    """Declare a feed as `courier feeds apply` would (validated spec stored as JSON)."""

    async def _feed(name: str, kind: str, pattern: str, **options: Any) -> None:
        spec = FeedSpec.model_validate({"name": name, "kind": kind, "pattern": pattern, **options})
        await provision.upsert_feed(db, tenant, name, kind, pattern, spec.model_dump(mode="json"))

    return _feed
