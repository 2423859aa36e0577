"""Every stored file reaches its own region's backup bucket, encrypted and verified, once."""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from courier.backup.copier import Copier
from courier.backup.handlers import on_export_delivered, on_file_received, on_import_result
from courier.backup.reconcile import leased_pass, measure, reconcile
from courier.backup.restore import status
from courier.common.areas import area_key, received_key
from courier.common.db.base import utcnow
from courier.common.db.engine import Database
from courier.common.db.models import Import, ReceivedFile, Tenant
from courier.common.db.models_backup import BackupEntry
from courier.common.db.models_exports import Export, ExportSpec
from courier.common.events import Event, ExportDelivered, FileReceived, ImportCompleted
from courier.common.metrics import BACKUP_BACKLOG
from courier.common.outbox import stage
from courier.common.regions import Regions
from courier.common.settings import Settings
from courier.common.uow import UnitOfWork
from tests.backup.conftest import AP, EU, KMS_KEY, Buckets, StoppableMoto, Tenants, backup_key
from tests.backup.conftest import versions as versions_of
from tests.support.services import eventually, running


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Stored:
    """The files one tenant's activity leaves in its primary store, and the events of it."""

    region: str
    keys: list[str]
    events: list[Event]


async def store_files(db: Database, regions: Regions, tenant: Tenant, region: str) -> Stored:
    """A received file with its import and result file, and an export built and delivered
    to the pickup area: every kind the backup service is told about."""
    primary = regions.primary(region)
    slug = tenant.slug
    file_id = uuid.uuid4()
    original = f"employee,hours\n{slug},7.5\n".encode()
    received = received_key(slug, file_id, "leave_1.csv")
    await primary.put(received, original)
    result = area_key(slug, "outbound", "results/leave_1.csv.result.csv")
    await primary.put(result, b"status,row,key,message\r\ncompleted,,,created 1\r\n")
    build = f"tenants/{slug}/exports/{uuid.uuid4()}/timesheets.csv"
    export_body = f"timesheet of {slug}\n".encode() * 50
    await primary.put(build, export_body)
    pickup = area_key(slug, "outbound", "timesheets.csv")
    await primary.put(pickup, export_body)
    async with db.transaction() as s:
        s.add(
            ReceivedFile(
                id=file_id, tenant_id=tenant.id, name="leave_1.csv", storage_key=received,
                size=len(original), sha256=sha(original), source="gateway",
            )
        )  # fmt: skip
        await s.flush()
        imp = Import(
            tenant_id=tenant.id, file_id=file_id, file_name="leave_1.csv", storage_key=received,
            sha256=sha(original), size=len(original), status="completed", result_key=result,
        )  # fmt: skip
        spec = ExportSpec(tenant_id=tenant.id, name="timesheets", kind="timesheets", spec={})
        s.add_all([imp, spec])
        await s.flush()
        export = Export(
            spec_id=spec.id, tenant_id=tenant.id, period_start=date(2026, 11, 30),
            period_end=date(2026, 11, 30), scheduled_for=utcnow(), status="delivered",
            file_name="timesheets.csv", storage_key=build, rows=50, size=len(export_body),
            sha256=sha(export_body),
        )  # fmt: skip
        s.add(export)
        await s.flush()
        import_id, export_id = imp.id, export.id
    events: list[Event] = [
        FileReceived(
            file_id=file_id, tenant_id=tenant.id, tenant=slug, name="leave_1.csv",
            storage_key=received, size=len(original), sha256=sha(original),
        ),
        ImportCompleted(
            import_id=import_id, file_id=file_id, tenant_id=tenant.id, tenant=slug,
            feed="leave", name="leave_1.csv", status="completed", counts={"created": 1},
        ),
        ExportDelivered(
            export_id=export_id, tenant_id=tenant.id, tenant=slug, spec="timesheets",
            destination="pickup:/outbound", name="timesheets.csv", sha256=sha(export_body),
            rows=50,
        ),
    ]  # fmt: skip
    return Stored(region, [received, result, build, pickup], events)


async def deliver(events: list[Event], uow: UnitOfWork, copier: Copier) -> None:
    """Hand each event to its handler, as the service's consumers do."""
    for event in events:
        if isinstance(event, FileReceived):
            await on_file_received(event, uow, copier)
        elif isinstance(event, ImportCompleted):
            await on_import_result(event, uow, copier)
        elif isinstance(event, ExportDelivered):
            await on_export_delivered(event, uow, copier)


async def ledger(db: Database) -> list[BackupEntry]:
    async with db.session() as s:
        return list((await s.scalars(select(BackupEntry).order_by(BackupEntry.key))).all())


async def test_files_of_each_kind_reach_their_regions_backup_encrypted_and_verified(
    db: Database,
    regions: Regions,
    tenants: Tenants,
    buckets: Buckets,
    uow: UnitOfWork,
    copier: Copier,
) -> None:
    stored = [
        await store_files(db, regions, tenants.eu, EU),
        await store_files(db, regions, tenants.ap, AP),
    ]
    for s in stored:
        await deliver(s.events, uow, copier)
    # A redelivery of every event copies nothing again.
    for s in stored:
        await deliver(s.events, uow, copier)

    rows = {r.key: r for r in await ledger(db)}
    client = buckets.backup_client()
    for s in stored:
        other = AP if s.region == EU else EU
        for key in s.keys:
            row = rows[key]
            assert row.status == "confirmed" and row.region == s.region, row.last_error
            assert len(versions_of(buckets, s.region, key)) == 1, key
            assert versions_of(buckets, other, key) == [], f"{key} left its region"
            head = client.head_object(
                Bucket=buckets.backup[s.region], Key=backup_key(key), ChecksumMode="ENABLED"
            )
            assert head["ChecksumSHA256"] == base64.b64encode(bytes.fromhex(row.sha256)).decode()
            assert head["VersionId"] == row.backup_version_id
            if s.region == EU:
                assert head["ServerSideEncryption"] == "AES256"
            else:
                assert head["ServerSideEncryption"] == "aws:kms"
                assert head["SSEKMSKeyId"] == KMS_KEY
    assert len(rows) == sum(len(s.keys) for s in stored)


async def test_a_large_file_goes_up_in_parts_and_is_verified(
    db: Database,
    regions: Regions,
    tenants: Tenants,
    buckets: Buckets,
    uow: UnitOfWork,
    copier: Copier,
) -> None:
    data = bytes(range(256)) * (6 * 1024 * 4)  # 6 MiB: two parts of the test's 5 MiB
    key = received_key("acme", uuid.uuid4(), "big.csv")
    await regions.primary(EU).put(key, data)
    event = FileReceived(
        file_id=uuid.uuid4(), tenant_id=tenants.eu.id, tenant="acme", name="big.csv",
        storage_key=key, size=len(data), sha256=sha(data),
    )  # fmt: skip
    await on_file_received(event, uow, copier)

    [row] = await ledger(db)
    assert row.status == "confirmed", row.last_error
    head = buckets.backup_client().head_object(Bucket=buckets.backup[EU], Key=backup_key(key))
    assert head["ETag"].strip('"').endswith("-2")
    assert head["ServerSideEncryption"] == "AES256"


async def test_backup_outage_queues_files_and_each_is_backed_up_once_after(
    db: Database,
    regions: Regions,
    tenants: Tenants,
    buckets: Buckets,
    backup_s3: StoppableMoto,
    uow: UnitOfWork,
    copier: Copier,
) -> None:
    with backup_s3.down():
        stored = [
            await store_files(db, regions, tenants.eu, EU),
            await store_files(db, regions, tenants.ap, AP),
        ]
        for s in stored:
            await deliver(s.events, uow, copier)
        # Files whose events never reached the backup service (the bus was down too).
        lost = {
            EU: area_key("acme", "outbound", "lost/one.csv"),
            AP: area_key("kiwi", "outbound", "lost/two.csv"),
        }
        for region, key in lost.items():
            await regions.primary(region).put(key, f"nobody announced {key}".encode())
        await reconcile(uow, copier)

        queued = await ledger(db)
        assert {r.status for r in queued} == {"failed"}
        assert all("unreachable" in (r.last_error or "") for r in queued)
        report = await status(db)
        assert sum(b.failed for b in report.backlog) == len(queued) == 10
        await measure(db, regions.names())
        assert BACKUP_BACKLOG.labels(region=EU)._value.get() == 5

    # The backoff of the failed copies runs out; one pass backs them all up.
    await reconcile(uow, copier, utcnow() + timedelta(seconds=5))
    await reconcile(uow, copier, utcnow() + timedelta(seconds=10))

    rows = await ledger(db)
    expected = {(s.region, k) for s in stored for k in s.keys} | {(r, k) for r, k in lost.items()}
    assert {(r.region, r.key) for r in rows} == expected, "none missing, none extra"
    assert all(r.status == "confirmed" for r in rows), [r.last_error for r in rows]
    for region, key in expected:
        assert len(versions_of(buckets, region, key)) == 1, f"{key} backed up twice"
    await measure(db, regions.names())
    assert BACKUP_BACKLOG.labels(region=EU)._value.get() == 0


async def test_reconciliation_runs_on_one_replica_at_a_time(
    db: Database, regions: Regions, tenants: Tenants, uow: UnitOfWork, copier: Copier
) -> None:
    await regions.primary(EU).put(area_key("acme", "outbound", "a.csv"), b"a")
    every = timedelta(minutes=5)
    first = await leased_pass(db, uow, copier, "replica-1", every)
    second = await leased_pass(db, uow, copier, "replica-2", every)
    assert first == 1 and second is None


async def test_backup_service_backs_up_what_the_bus_announces(
    db: Database,
    regional_settings: Settings,
    regions: Regions,
    tenants: Tenants,
    buckets: Buckets,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COURIER_BACKUP_RECONCILE_SECONDS", "3600")
    stored = await store_files(db, regions, tenants.ap, AP)
    async with db.transaction() as s:
        stage(s, *stored.events)
    async with running("backup", regional_settings):

        async def all_confirmed() -> bool:
            async with db.session() as s:
                n = await s.scalar(select(func.count()).where(BackupEntry.status == "confirmed"))
            return n == len(stored.keys)

        await eventually(all_confirmed, within=30)
    for key in stored.keys:
        assert len(versions_of(buckets, AP, key)) == 1
