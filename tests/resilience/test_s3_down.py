"""S3 goes away: first the tenant's primary bucket, then its backup bucket.

The gateway, the importer and the backup service are processes of their own, all on S3
(a moto server each for the primary and the backup buckets, both stopped and started
again on the same port by the test, their buckets kept). While the primary store is down
an upload is refused and leaves nothing; while the backup store is down uploads go on
and their backups wait; when it is back every received file has exactly one backup.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest
from sqlalchemy import func, select

from courier.cli import provision
from courier.common.db.engine import Database
from courier.common.db.models import Import, ReceivedFile
from courier.common.db.models_backup import BackupEntry
from courier.common.regions import Regions
from courier.common.settings import RegionStores, Settings
from courier.gateway import admin
from tests.support.clients import (
    SftpResult,
    asyncssh_connect,
    openssh_available,
    openssh_sftp,
)
from tests.support.deployed import deployment
from tests.support.fixtures_data import leave_csv
from tests.support.outages import logs_on_failure, service_env
from tests.support.s3 import S3_REGION, StoppableMoto, new_bucket, s3_client
from tests.support.services import eventually

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(not openssh_available(), reason="needs OpenSSH sftp and sshpass"),
]

PASSWORD = "Corr3ct-Horse-Battery"
EU = "eu-west-2"
PREFIX = "courier"


@pytest.fixture
def primary_s3() -> Iterator[StoppableMoto]:
    server = StoppableMoto().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def backup_s3() -> Iterator[StoppableMoto]:
    server = StoppableMoto().start()
    try:
        yield server
    finally:
        server.stop()


def _url(bucket: str, endpoint: str) -> str:
    return f"s3://{bucket}/{PREFIX}?endpoint={endpoint}&region={S3_REGION}"


async def _put(port: int, local: Path) -> SftpResult:
    return await openssh_sftp(
        port, "acme-payroll", [f"put {local} /inbound/{local.name}"], password=PASSWORD
    )


async def _imported(db: Database, name: str) -> Import | None:
    async with db.session() as s:
        imp = await s.scalar(select(Import).where(Import.file_name == name))
    return imp if imp is not None and imp.finished_at is not None else None


def _keys(endpoint: str, bucket: str, under: str) -> list[str]:
    listed = s3_client(endpoint).list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}/{under}")
    return sorted(o["Key"][len(PREFIX) + 1 :] for o in listed.get("Contents", []))


def _versions(endpoint: str, bucket: str, under: str) -> list[str]:
    listed = s3_client(endpoint).list_object_versions(Bucket=bucket, Prefix=f"{PREFIX}/{under}")
    return sorted(v["Key"][len(PREFIX) + 1 :] for v in listed.get("Versions", []))


async def test_uploads_are_refused_while_s3_is_down_and_backups_resume_none_missing(
    settings: Settings,
    db: Database,
    primary_s3: StoppableMoto,
    backup_s3: StoppableMoto,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "test")
    primary, backup = new_bucket(primary_s3.url), new_bucket(backup_s3.url)
    # Versioned: a file copied twice would show as two versions of its key.
    s3_client(backup_s3.url).put_bucket_versioning(
        Bucket=backup, VersioningConfiguration={"Status": "Enabled"}
    )
    own = settings.model_copy(
        update={
            "regions": {
                EU: RegionStores(
                    storage_url=_url(primary, primary_s3.url),
                    backup_url=_url(backup, backup_s3.url),
                    sse="AES256",
                )
            },
            "default_region": EU,
            "outbox_relay_seconds": 0.5,
        }
    )
    tenant = await provision.ensure_tenant(
        db, "acme", "Acme Ltd", "Europe/London", region=EU, regions=Regions(own)
    )
    await provision.upsert_feed(db, tenant, "leave-balances", "leave_balances", "leave_*.csv", {})
    await admin.create_account(
        db, tenant, "acme-payroll", password=PASSWORD, auth_policy="password",
        allow=["127.0.0.1/32"],
    )  # fmt: skip
    files = {}
    for n in range(1, 5):
        files[n] = tmp_path / f"leave_2026110{n}.csv"
        files[n].write_bytes(leave_csv(f"E{n},annual,{n}.00,2026-11-0{n}"))

    env = service_env(
        own,
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        # An unreachable endpoint fails after one retry, not botocore's default five.
        AWS_MAX_ATTEMPTS="2",
        COURIER_BACKUP_RECONCILE_SECONDS="2",
        COURIER_BACKUP_RECONCILE_MIN_AGE_SECONDS="1",
        COURIER_BACKUP_RETRY_MIN_SECONDS="1",
        COURIER_BACKUP_RETRY_MAX_SECONDS="2",
    )
    with deployment(tmp_path / "services", env) as stack, logs_on_failure(stack):
        started = [stack.add(name, start=False) for name in ("importer", "backup", "gateway")]
        for service in started:
            service.launch()
        for service in started:
            service.wait_ready()

        first = await _put(own.gateway_port, files[1])
        assert first.returncode == 0 and "Couldn't" not in first.stderr, first.stderr
        await eventually(lambda: _imported(db, files[1].name), within=90)

        with primary_s3.down():
            refused = await _put(own.gateway_port, files[2])
            # OpenSSH's sftp shows the status only; clients that show the server's
            # message tell the partner the file was not received.
            assert "close remote: Failure" in refused.stderr, refused.stderr
            async with (
                await asyncssh_connect(own.gateway_port, "acme-payroll", PASSWORD) as conn,
                conn.start_sftp_client() as sftp,
            ):
                remote = await sftp.open(f"/inbound/{files[2].name}", "wb")
                await remote.write(files[2].read_bytes())
                with pytest.raises(asyncssh.SFTPFailure) as told:
                    await remote.close()
            assert told.value.reason == (
                f"/inbound/{files[2].name}: the file could not be stored; it was not received "
                "and this was logged for support"
            )
        assert all(stack.of(name)[0].alive() for name in ("importer", "backup", "gateway"))

        with backup_s3.down():
            for n in (3, 4):
                sent = await _put(own.gateway_port, files[n])
                assert sent.returncode == 0 and "Couldn't" not in sent.stderr, sent.stderr
            for n in (3, 4):
                await eventually(lambda n=n: _imported(db, files[n].name), within=90)  # type: ignore[misc]

            async def failed_backups() -> int:
                async with db.session() as s:
                    return int(
                        await s.scalar(
                            select(func.count())
                            .select_from(BackupEntry)
                            .where(BackupEntry.status == "failed")
                        )
                        or 0
                    )

            await eventually(failed_backups, within=90)

        async with db.session() as s:
            received = sorted(await s.scalars(select(ReceivedFile.storage_key)))

        async def all_backed_up() -> list[str] | None:
            keys = _keys(backup_s3.url, backup, "tenants/acme/received/")
            return keys if keys == received else None

        await eventually(all_backed_up, within=90)

        async def settled() -> bool:
            async with db.session() as s:
                waiting = await s.scalar(
                    select(func.count())
                    .select_from(BackupEntry)
                    .where(BackupEntry.status != "confirmed")
                )
            return waiting == 0

        await eventually(settled, within=90)

    # The refused upload left nothing: no row, no object, no import.
    assert sorted(k.rsplit("/", 1)[-1] for k in received) == [files[n].name for n in (1, 3, 4)]
    assert _keys(primary_s3.url, primary, "tenants/acme/inbound/") == [
        f"tenants/acme/inbound/{files[n].name}" for n in (1, 3, 4)
    ]
    async with db.session() as s:
        imports = sorted(await s.scalars(select(Import.file_name)))
        ledger = list(
            await s.execute(
                select(BackupEntry.key, func.count())
                .where(BackupEntry.origin == "received")
                .group_by(BackupEntry.key)
            )
        )
    assert imports == [files[n].name for n in (1, 3, 4)]
    # Every received file: one ledger row, one version in the backup bucket.
    assert sorted((key, count) for key, count in ledger) == [(k, 1) for k in received]
    assert _versions(backup_s3.url, backup, "tenants/acme/received/") == received
