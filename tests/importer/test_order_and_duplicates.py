"""Same content is not applied twice; a feed's files land in arrival order, whatever the events."""

from __future__ import annotations

from sqlalchemy import select

from courier.cli import provision
from courier.common.db.models import Import
from courier.common.uow import UnitOfWork
from courier.importer.apply import handle
from tests.importer.conftest import import_of, records
from tests.support.fixtures_data import leave_csv
from tests.support.services import eventually, running
from tests.support.staged import staged


async def test_same_content_again_is_a_duplicate_and_not_applied(db, feed, send) -> None:
    await feed("leave", "leave_balances", "leave_*.csv")
    content = leave_csv("E1,annual,1,2026-11-01")
    first = await send("leave_1.csv", content)
    await send("leave_2.csv", leave_csv("E1,annual,5,2026-11-01"))
    again = await send("leave_3.csv", content)
    assert again.status == "duplicate"
    assert again.details["duplicate_of"] == str(first.id)
    assert await records(db, again) == []


async def test_redelivered_event_changes_nothing_and_stages_nothing(
    db, storage, feed, drop
) -> None:
    await feed("leave", "leave_balances", "leave_*.csv")
    event = await drop("leave_1.csv", leave_csv("E1,annual,1,2026-11-01"))
    [first] = await handle(event, UnitOfWork(db, storage))
    before = await staged(db)
    assert await handle(event, UnitOfWork(db, storage)) == []
    assert (await import_of(db, event.file_id)).id == first.id
    assert await staged(db) == before
    assert [e.subject for e in before] == ["courier.file.received", "courier.import.completed"]


async def test_a_late_event_cannot_overtake_an_earlier_file_of_its_feed(
    db, storage, feed, drop
) -> None:
    await feed("leave", "leave_balances", "leave_*.csv")
    events = [
        await drop(f"leave_{n}.csv", leave_csv(f"E1,annual,{n},2026-11-01")) for n in (1, 2, 3)
    ]
    # The newest file's event comes first: the older two are imported before it.
    done = await handle(events[2], UnitOfWork(db, storage))
    assert [i.file_name for i in done] == ["leave_1.csv", "leave_2.csv", "leave_3.csv"]
    for late in events[:2]:
        assert await handle(late, UnitOfWork(db, storage)) == []
    third = await import_of(db, events[2].file_id)
    [rec] = await records(db, third)
    assert rec.changes == {"balance_hours": ["2.00", "3.00"]}


async def test_two_replicas_keep_each_tenants_files_in_order(
    settings, db, bus, tenant, feed
) -> None:
    other = await provision.ensure_tenant(db, "globex", "Globex")
    await feed("leave", "leave_balances", "leave_*.csv")
    await provision.upsert_feed(db, other, "leave", "leave_balances", "leave_*.csv", {})
    from courier.common.areas import area_key
    from courier.common.received import record_file
    from courier.common.storage import open_storage

    storage = open_storage(settings.storage_url)
    async with running("importer", settings), running("importer", settings):
        for n in range(1, 5):
            for t in (tenant, other):
                key = area_key(t.slug, "inbound", f"leave_{n}.csv")
                await storage.put(key, leave_csv(f"E1,annual,{n},2026-11-0{n}"))
                await record_file(db, storage, t, f"leave_{n}.csv", key, source="api")

        async def all_done() -> list[Import] | None:
            async with db.session() as s:
                found = list(await s.scalars(select(Import).where(Import.finished_at.is_not(None))))
            return found if len(found) == 8 else None

        imports = await eventually(all_done, within=60)
    for t in (tenant, other):
        mine = sorted((i for i in imports if i.tenant_id == t.id), key=lambda i: i.file_name)
        assert [i.status for i in mine] == ["completed"] * 4
        for n, imp in enumerate(mine[1:], start=1):
            [rec] = await records(db, imp)
            # Each file updates the value the previous file of its feed left.
            assert rec.changes["balance_hours"] == [f"{n}.00", f"{n + 1}.00"]


async def test_partner_finds_a_result_file_for_each_processed_file(db, storage, feed, send) -> None:
    await feed("leave", "leave_balances", "leave_*.csv")
    good = await send("leave_1.csv", leave_csv("E1,annual,1,2026-11-01", "=E2,annual,x,2026-11-01"))
    unknown = await send("unknown.txt", b"hello")
    ok = (await storage.read(good.result_key)).decode()
    assert ok.splitlines() == [
        "status,row,key,message",
        'completed_with_errors,,,"created 1, updated 0, unchanged 0, deleted 0, errored 1"',
        "errored,3,'=E2/annual,balance_hours: 'x' is not a number",
    ]
    refused = (await storage.read(unknown.result_key)).decode()
    assert (
        refused.splitlines()[1] == "rejected,,,unrecognised file name: expected one of leave_*.csv"
    )


async def test_a_file_longer_to_import_than_ack_wait_is_delivered_once(
    settings, db, bus, tenant, feed
) -> None:
    from courier.common.areas import area_key
    from courier.common.received import record_file
    from courier.common.storage import open_storage

    # Far shorter than the import (seconds), with room for a loaded machine's stalls.
    quick = settings.model_copy(update={"ack_wait_seconds": 2.0})
    await feed("leave", "leave_balances", "leave_*.csv")
    storage = open_storage(settings.storage_url)
    key = area_key(tenant.slug, "inbound", "leave_big.csv")
    await storage.put(key, leave_csv(*(f"E{i},annual,1,2026-11-01" for i in range(60_000))))
    async with running("importer", quick) as importer:
        await record_file(db, storage, tenant, "leave_big.csv", key, source="api")

        async def finished() -> Import | None:
            async with db.session() as s:
                return await s.scalar(select(Import).where(Import.finished_at.is_not(None)))

        imp = await eventually(finished, within=120)
        js = importer.bus.broker.connection.jetstream()
        info = await js.consumer_info(
            importer.bus.stream("COURIER_FILES"), importer.bus.durable("importer")
        )
    assert (imp.status, imp.created) == ("completed", 60_000)
    assert (info.delivered.consumer_seq, info.num_redelivered) == (1, 0)
