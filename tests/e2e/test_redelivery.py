"""A `courier.file.received` event delivered twice imports once."""

from __future__ import annotations

import asyncio
import json

from sqlalchemy import func, select

from courier.cli import provision
from courier.common.areas import area_key
from courier.common.bus import Bus
from courier.common.db.engine import Database
from courier.common.db.models import Import, ImportRecord, LeaveBalance, Tenant
from courier.common.events import ImportCompleted
from courier.common.received import event_for, record_file
from courier.common.settings import Settings
from courier.common.storage import Storage
from tests.support.fixtures_data import leave_csv
from tests.support.services import eventually, running


async def test_same_event_delivered_twice_is_imported_once(
    settings: Settings, db: Database, storage: Storage, bus: Bus, tenant: Tenant, leave_feed: None
) -> None:
    key = area_key(tenant.slug, "inbound", "leave_20261101.csv")
    await storage.put(key, leave_csv("E1,annual,8,2026-11-01", "E2,annual,16,2026-11-01"))
    row = await record_file(db, storage, tenant, "leave_20261101.csv", key, source="api")

    completed: list[ImportCompleted] = []

    async def on_completed(msg) -> None:  # type: ignore[no-untyped-def]
        completed.append(ImportCompleted.model_validate(json.loads(msg.data)))

    sub = await bus.broker.connection.subscribe(
        bus.subject("courier.import.completed"), cb=on_completed
    )
    async with running("importer", settings) as importer:

        async def one_import() -> Import | None:
            async with db.session() as s:
                return await s.scalar(select(Import))

        await eventually(one_import)
        # Past the stream's dedupe window, the same event arrives again (a republish
        # after an outage); only the database can tell it was already applied.
        event = event_for(row, tenant)
        await bus.broker.publish(
            event.model_dump(mode="json"),
            bus.subject(event.subject),
            headers={"Nats-Msg-Id": "replayed-" + event.msg_id()},
            stream=bus.stream("COURIER_FILES"),
        )

        async def both_acked() -> bool:
            info = await importer.bus.broker.connection.jetstream().consumer_info(
                importer.bus.stream("COURIER_FILES"), importer.bus.durable("importer")
            )
            return info.delivered.stream_seq >= 2 and info.num_ack_pending == 0

        await eventually(both_acked)
        await asyncio.sleep(0.5)  # time for a second (wrong) outcome to be published
    await sub.unsubscribe()

    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Import)) == 1
        assert await s.scalar(select(func.count()).select_from(ImportRecord)) == 2
        assert await s.scalar(select(func.count()).select_from(LeaveBalance)) == 2
    # The repeat changed nothing and staged nothing: downstream sees one outcome.
    [outcome] = completed
    assert outcome.counts.created == 2


async def test_unrecognised_file_name_is_rejected_with_expected_patterns(
    settings: Settings, db: Database, storage: Storage, bus: Bus, tenant: Tenant, leave_feed: None
) -> None:
    await provision.upsert_feed(db, tenant, "staff", "staff", "staff_{yyyyMMdd}.csv", {})
    key = area_key(tenant.slug, "inbound", "holiday.xlsx")
    await storage.put(key, b"not a csv")
    await record_file(db, storage, tenant, "holiday.xlsx", key, source="api")
    async with running("importer", settings):

        async def rejected() -> Import | None:
            async with db.session() as s:
                return await s.scalar(select(Import).where(Import.status == "rejected"))

        imp = await eventually(rejected)
    assert imp.error == "unrecognised file name"
    assert imp.details["expected_patterns"] == ["leave_*.csv", "staff_{yyyyMMdd}.csv"]
