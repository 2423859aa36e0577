"""The console under test: the app in process, and imports made by the importer's own handler.

A file is stored and recorded as the gateway does, then handled by the importer, so
the pages show real imports, records and result files.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI

from courier.cli import provision
from courier.common.db.base import utcnow
from courier.common.db.engine import Database
from courier.common.db.models import Feed, Import, Tenant
from courier.common.db.models_exports import Export
from courier.common.events import ExportDelivered
from courier.common.settings import Settings
from courier.common.storage import Storage
from courier.console.api import create_app
from courier.monitor.pickups import watch_delivery
from tests.support.logs import logs_to_stderr
from tests.support.staged import staged
from tests.support.tenant_objects import build_export, declare_feed, import_file

Send = Callable[..., Awaitable[Import]]
DeclareFeed = Callable[..., Awaitable[Feed]]


@pytest.fixture
def app(db: Database, storage: Storage, settings: Settings) -> FastAPI:
    return create_app(db, storage, settings)


@pytest.fixture
def logs(capfd: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """The services' JSON log lines as written to standard error (file descriptor 2)."""
    with logs_to_stderr():
        yield capfd


@pytest.fixture
async def other_tenant(db: Database) -> Tenant:
    return await provision.ensure_tenant(db, "globex", "Globex Corp", "Europe/London")


@pytest.fixture
def feed(db: Database, tenant: Tenant) -> DeclareFeed:
    """Declare a feed as `courier feeds apply` would (for `tenant` unless `to=` another)."""

    async def _feed(
        name: str, kind: str, pattern: str, to: Tenant | None = None, **options: Any
    ) -> Feed:
        return await declare_feed(db, to or tenant, name, pattern, kind, **options)

    return _feed


@pytest.fixture
def send(db: Database, storage: Storage, tenant: Tenant) -> Send:
    """Store and record a file as the gateway does, import it; returns the import."""

    async def _send(name: str, data: bytes, to: Tenant | None = None) -> Import:
        return await import_file(db, storage, to or tenant, name, data)

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
