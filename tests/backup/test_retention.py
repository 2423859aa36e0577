"""Retention deletes a tenant's old files from both stores, and never what is still needed."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from courier.backup.copier import Copier, Item
from courier.backup.retention import PASS_ID, Retention, leased_run
from courier.common.areas import area_key, received_key
from courier.common.db.base import utcnow
from courier.common.db.engine import Database
from courier.common.db.models import Import, ReceivedFile, Tenant
from courier.common.db.models_backup import BackupEntry, BackupPass
from courier.common.db.models_incidents import Incident
from courier.common.lease import hold
from courier.common.regions import RegionalStorage, Regions
from courier.common.settings import Settings
from courier.common.uow import UnitOfWork
from tests.backup.conftest import AP, EU, Buckets, Tenants, regions_env, versions
from tests.support.cli import cli_env, courier

EVERY = timedelta(minutes=5)
LATER = timedelta(days=10)


@pytest.fixture
async def storage(db: Database, regions: Regions) -> AsyncIterator[RegionalStorage]:
    store = RegionalStorage(regions, db)
    try:
        yield store
    finally:
        await store.close()


async def set_retention(
    db: Database, tenant: Tenant, primary: int | None, backup: int | None
) -> None:
    async with db.transaction() as s:
        await s.execute(
            update(Tenant)
            .where(Tenant.id == tenant.id)
            .values(retention_days_primary=primary, retention_days_backup=backup)
        )


async def put_backed_up(
    storage: RegionalStorage, uow: UnitOfWork, copier: Copier, tenant: Tenant, key: str
) -> None:
    await storage.put(key, f"content of {key}\n".encode())
    status = await copier.back_up(uow, Item(tenant.id, tenant.region, key, "reconcile"))
    assert status == "confirmed"


async def hold_import(db: Database, tenant: Tenant, file_id: uuid.UUID, key: str) -> None:
    body = f"content of {key}\n".encode()
    digest = hashlib.sha256(body).hexdigest()
    async with db.transaction() as s:
        s.add(
            ReceivedFile(
                id=file_id, tenant_id=tenant.id, name="held.csv", storage_key=key,
                size=len(body), sha256=digest, source="gateway",
            )
        )  # fmt: skip
        await s.flush()
        s.add(
            Import(
                tenant_id=tenant.id, file_id=file_id, file_name="held.csv", storage_key=key,
                sha256=digest, size=len(body), status="awaiting_approval",
            )
        )  # fmt: skip


async def open_incident(db: Database, tenant: Tenant, file_name: str) -> None:
    async with db.transaction() as s:
        s.add(
            Incident(
                kind="import_failed", incident_class="platform", cause_key="retention-test",
                open_key="retention-test", tenant_id=tenant.id, tenant=tenant.slug,
                file_name=file_name, summary=f"import of {file_name} failed", details={},
            )
        )  # fmt: skip


async def rows(db: Database) -> dict[str, BackupEntry]:
    async with db.session() as s:
        return {r.key: r for r in await s.scalars(select(BackupEntry))}


async def test_old_files_are_deleted_from_both_stores_but_not_what_is_still_needed(
    db: Database,
    regions: Regions,
    tenants: Tenants,
    buckets: Buckets,
    uow: UnitOfWork,
    copier: Copier,
    storage: RegionalStorage,
) -> None:
    acme = tenants.eu
    old = area_key("acme", "outbound", "results/leave_1.csv.result.csv")
    held_id = uuid.uuid4()
    held = received_key("acme", held_id, "held.csv")
    broken = received_key("acme", uuid.uuid4(), "broken.csv")
    unbacked = area_key("acme", "outbound", "not-yet-backed-up.csv")
    for key in (old, held, broken):
        await put_backed_up(storage, uow, copier, acme, key)
    await storage.put(unbacked, b"no backup of this yet\n")
    await hold_import(db, acme, held_id, held)
    await open_incident(db, acme, "broken.csv")
    await set_retention(db, acme, primary=7, backup=7)
    primary = regions.primary(EU)

    # Today everything is younger than the limit: nothing goes.
    report = await Retention(storage).run(db)
    assert report.primary_deleted == [] and report.backup_deleted == []
    assert all([await primary.exists(k) for k in (old, held, broken, unbacked)])

    # Ten days on, past the seven days of both stores.
    now = utcnow() + LATER
    report = await leased_run(db, Retention(storage), "replica-1", EVERY, now)
    assert report is not None
    assert report.primary_deleted == [old]
    assert [key for key, _ in report.backup_deleted] == [old]
    assert not await primary.exists(old)
    assert versions(buckets, EU, old) == [], "the recorded version is deleted"
    ledger = await rows(db)
    row = ledger[old]
    assert row.status == "deleted"
    assert row.deleted_at == now and "7 days in the backup store" in (row.deleted_reason or "")
    assert row.primary_deleted_at == now
    assert "7 days in the primary store" in (row.primary_deleted_reason or "")

    # Kept, in both stores, with why.
    assert "awaits approval" in report.kept[held]
    assert "incident" in report.kept[broken]
    assert "no confirmed backup" in report.kept[unbacked]
    for key in (held, broken, unbacked):
        assert await primary.exists(key), key
    for key in (held, broken):
        assert ledger[key].status == "confirmed" and ledger[key].deleted_at is None
        assert ledger[key].primary_deleted_at is None
        assert len(versions(buckets, EU, key)) == 1, key
    assert unbacked not in ledger

    # Once the incident is resolved and the import decided, they go too.
    async with db.transaction() as s:
        await s.execute(update(Incident).values(state="resolved", open_key=None))
        await s.execute(update(Import).values(status="discarded"))
    report = await Retention(storage).run(db, now)
    assert sorted(report.primary_deleted) == sorted([held, broken])
    assert not await primary.exists(held) and versions(buckets, EU, broken) == []


async def test_a_tenant_without_retention_keeps_everything(
    db: Database,
    regions: Regions,
    tenants: Tenants,
    buckets: Buckets,
    uow: UnitOfWork,
    copier: Copier,
    storage: RegionalStorage,
) -> None:
    key = area_key("kiwi", "outbound", "results/old.csv.result.csv")
    await put_backed_up(storage, uow, copier, tenants.ap, key)
    # Another tenant's retention does not reach kiwi's files.
    await set_retention(db, tenants.eu, primary=1, backup=1)

    report = await Retention(storage).run(db, utcnow() + timedelta(days=3650))
    assert report.primary_deleted == [] and report.backup_deleted == []
    assert await regions.primary(AP).exists(key)
    assert len(versions(buckets, AP, key)) == 1
    assert (await rows(db))[key].status == "confirmed"


async def test_retention_runs_on_one_replica_at_a_time(
    db: Database, tenants: Tenants, storage: RegionalStorage
) -> None:
    await set_retention(db, tenants.eu, primary=7, backup=None)
    # While one replica holds the lease, another does not run.
    await leased_run(db, Retention(storage), "replica-0", timedelta(seconds=0))
    async with hold(db, BackupPass, PASS_ID, "replica-1", EVERY) as lease:
        assert lease is not None
        assert await leased_run(db, Retention(storage), "replica-2", EVERY) is None
    # Nor right after another replica's run within the interval.
    assert await leased_run(db, Retention(storage), "replica-1", EVERY) is None
    async with db.transaction() as s:
        await s.execute(update(BackupPass).values(last_finished_at=None))
    first = await leased_run(db, Retention(storage), "replica-1", EVERY)
    second = await leased_run(db, Retention(storage), "replica-2", EVERY)
    assert first is not None and second is None


async def test_set_retention_and_show_from_the_cli(
    db: Database, regional_settings: Settings, tenants: Tenants, buckets: Buckets
) -> None:
    env = cli_env(
        regional_settings, COURIER_REGIONS=regions_env(buckets), COURIER_DEFAULT_REGION=EU
    )
    code, out = await courier(env, "tenants", "set-retention", "acme", "--primary-days", "30")
    assert code == 0, out
    assert "primary 30 days, backup kept forever" in out
    code, out = await courier(env, "tenants", "show", "acme")
    assert code == 0, out
    assert "retention: primary 30 days backup kept forever" in out
    async with db.session() as s:
        tenant = await s.scalar(select(Tenant).where(Tenant.slug == "acme"))
    assert tenant is not None
    assert (tenant.retention_days_primary, tenant.retention_days_backup) == (30, None)
