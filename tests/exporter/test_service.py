"""The exporter service: due runs built once, across restarts, announced on the bus."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from courier.common.bus import Bus
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_exports import Export, Timesheet
from courier.common.settings import Settings
from courier.common.storage import Storage
from courier.exporter.schedule import schedule_due
from tests.exporter.conftest import exports, make_spec
from tests.support.services import eventually, running

pytestmark = pytest.mark.usefixtures("quick_exporter")


async def test_restart_between_schedule_and_build_still_makes_one_file(
    settings: Settings,
    db: Database,
    storage: Storage,
    bus: Bus,
    tenant: Tenant,
    timesheets: list[Timesheet],
) -> None:
    now = datetime.now(UTC)
    # Exactly one daily firing in any 24 h of UTC, whatever the time of day the test runs.
    await make_spec(
        db,
        tenant,
        created=now - timedelta(hours=24),
        schedule={"cron": "0 6 * * *", "timezone": "UTC"},
    )
    # A replica scheduled yesterday's period, took the lease and died before building.
    [export] = await schedule_due(db, now)
    async with db.transaction() as s:
        await s.execute(
            update(Export)
            .where(Export.id == export.id)
            .values(lease_owner="gone", lease_until=now - timedelta(seconds=1))
        )

    async def delivered() -> list[Export] | None:
        found = await exports(db)
        return found if found and all(e.status == "delivered" for e in found) else None

    async with running("exporter", settings):
        await eventually(delivered)
    async with running("exporter", settings), running("exporter", settings):
        await eventually(delivered)
    [done] = await exports(db)
    assert done.id == export.id
    outbound = await storage.list("tenants/acme/outbound")
    assert [o.key.rsplit("/", 1)[-1] for o in outbound] == [done.file_name]

    js = bus.broker.connection.jetstream()
    sub = await js.pull_subscribe(
        bus.subject("courier.export.delivered"), stream=bus.stream("COURIER_EXPORTS")
    )
    [msg] = await sub.fetch(1, timeout=5)
    body = json.loads(msg.data)
    assert (body["export_id"], body["name"], body["destination"]) == (
        str(done.id), done.file_name, "pickup:/outbound",
    )  # fmt: skip


async def test_starts_cleanly_without_export_specs(settings: Settings, db: Database) -> None:
    async with running("exporter", settings) as runtime:
        assert await runtime.bus.ping()
    assert await exports(db) == []
