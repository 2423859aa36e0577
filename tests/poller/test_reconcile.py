"""Reconciliation: nothing that reached `/inbound` storage goes unrecorded."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from courier.common.areas import area_key
from courier.common.db.engine import Database
from courier.common.db.models import Import, ReceivedFile, Tenant
from courier.common.received import record_file
from courier.common.regions import RegionalStorage, Regions
from courier.common.settings import Settings
from courier.common.storage import Storage
from courier.poller.reconcile import reconcile
from tests.support.fixtures_data import leave_csv
from tests.support.services import eventually, running
from tests.support.staged import staged


async def _imports(db: Database) -> list[Import]:
    async with db.session() as s:
        return list(await s.scalars(select(Import).where(Import.finished_at.is_not(None))))


async def test_file_written_straight_into_storage_is_recorded_and_imported_once(
    settings: Settings,
    db: Database,
    storage: Storage,
    tenant: Tenant,
    leave_feed: None,
) -> None:
    # Written to the bucket directly (or by an uploader that died before recording it).
    await storage.put(
        area_key(tenant.slug, "inbound", "leave_20261104.csv"),
        leave_csv("E1,annual,8,2026-11-04", "E2,sick,4,2026-11-04"),
    )
    async with running("importer", settings):
        assert await reconcile(db, storage, min_age=timedelta(0)) == 1
        assert await reconcile(db, storage, min_age=timedelta(0)) == 0
        [imp] = await eventually(lambda: _imports(db))
    assert imp.file_name == "leave_20261104.csv" and imp.created == 2
    async with db.session() as s:
        [row] = (await s.scalars(select(ReceivedFile))).all()
    assert row.source == "reconcile"


async def test_young_objects_are_left_to_the_gateway(
    db: Database, storage: Storage, tenant: Tenant
) -> None:
    await storage.put(area_key(tenant.slug, "inbound", "leave_now.csv"), b"x")
    assert await reconcile(db, storage, min_age=timedelta(minutes=2)) == 0
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(ReceivedFile)) == 0


async def test_file_recorded_while_the_bus_was_down_is_imported_once_a_relay_runs(
    settings: Settings,
    db: Database,
    storage: Storage,
    tenant: Tenant,
    leave_feed: None,
) -> None:
    key = area_key(tenant.slug, "inbound", "leave_20261105.csv")
    await storage.put(key, leave_csv("E3,annual,2,2026-11-05"))
    # Recorded with no relay running: its event waits in the outbox, not lost.
    await record_file(db, storage, tenant, "leave_20261105.csv", key, source="gateway")
    assert [e.subject for e in await staged(db)] == ["courier.file.received"]

    async with running("importer", settings):
        [imp] = await eventually(lambda: _imports(db))
        assert await reconcile(db, storage, min_age=timedelta(0)) == 0
    assert imp.file_name == "leave_20261105.csv"
    async with db.session() as s:
        # The ledger row was reused, not duplicated by the storage scan.
        assert await s.scalar(select(func.count()).select_from(ReceivedFile)) == 1


async def test_a_tenant_whose_region_has_no_store_does_not_hold_up_the_others(
    settings: Settings, db: Database, storage: Storage, tenant: Tenant
) -> None:
    # A tenant listed first whose region was taken out of the configuration.
    async with db.transaction() as s:
        s.add(Tenant(slug="aaa-stranded", name="Stranded", region="nowhere"))
    await storage.put(area_key(tenant.slug, "inbound", "leave_20261104.csv"), b"x")
    regional = RegionalStorage(Regions(settings), db)
    try:
        assert await reconcile(db, regional, min_age=timedelta(0)) == 1
    finally:
        await regional.close()
