"""`courier backup status | verify | restore` as an operator runs them.

On SQLite only: each command is a process of its own (seconds to start), and the
ledger queries behind them run on PostgreSQL too in test_backup.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from courier.backup.copier import Copier, Item
from courier.common.areas import area_key
from courier.common.db.base import utcnow
from courier.common.db.engine import Database
from courier.common.db.models_backup import BackupEntry
from courier.common.regions import Regions
from courier.common.settings import Settings
from courier.common.uow import UnitOfWork
from tests.backup.conftest import EU, Buckets, Tenants, backup_key, regions_env
from tests.support import infra
from tests.support.cli import cli_env, courier

REPORT = area_key("acme", "outbound", "reports/hours.csv")
OTHER = area_key("acme", "inbound", "staff.csv")
FIRST = b"employee,hours\nann,7.5\n"
SECOND = b"employee,hours\nann,7.5\nbob,8.0\n"


@pytest.fixture
def database_url(sqlite_databases: infra.SqliteDatabases) -> Iterator[str]:
    url = sqlite_databases.create()
    try:
        yield url
    finally:
        sqlite_databases.drop(url)


async def back_up(uow: UnitOfWork, copier: Copier, tenants: Tenants, key: str) -> None:
    status = await copier.back_up(uow, Item(tenants.eu.id, EU, key, "reconcile"))
    assert status == "confirmed"


async def version_of(db: Database, key: str, content: bytes) -> str:
    async with db.session() as s:
        version = await s.scalar(
            select(BackupEntry.backup_version_id).where(
                BackupEntry.key == key,
                BackupEntry.sha256 == hashlib.sha256(content).hexdigest(),
            )
        )
    assert version
    return version


async def test_restore_gives_identical_bytes_of_the_latest_or_an_earlier_version(
    db: Database,
    regions: Regions,
    regional_settings: Settings,
    tenants: Tenants,
    buckets: Buckets,
    uow: UnitOfWork,
    copier: Copier,
    tmp_path: Path,
) -> None:
    primary = regions.primary(EU)
    started = utcnow() - timedelta(seconds=1)
    await primary.put(REPORT, FIRST)
    await back_up(uow, copier, tenants, REPORT)
    await primary.put(REPORT, SECOND)
    await back_up(uow, copier, tenants, REPORT)
    await primary.put(OTHER, b"id,name\n1,Ann\n")
    await back_up(uow, copier, tenants, OTHER)
    first_version = await version_of(db, REPORT, FIRST)
    env = cli_env(
        regional_settings, COURIER_REGIONS=regions_env(buckets), COURIER_DEFAULT_REGION=EU
    )

    code, out = await courier(
        env, "backup", "restore", "--tenant", "acme", "outbound/reports/hours.csv",
        "--to", str(tmp_path / "latest.csv"),
    )  # fmt: skip
    assert code == 0, out
    assert (tmp_path / "latest.csv").read_bytes() == SECOND

    code, out = await courier(
        env, "backup", "restore", "--tenant", "acme", "/outbound/reports/hours.csv",
        "--version", first_version, "--to", str(tmp_path / "earlier.csv"),
    )  # fmt: skip
    assert code == 0, out
    assert (tmp_path / "earlier.csv").read_bytes() == FIRST

    # Lost from the primary store: put back in place.
    await primary.delete(REPORT)
    code, out = await courier(
        env, "backup", "restore", "--tenant", "acme", "outbound/reports/hours.csv"
    )
    assert code == 0, out
    assert await primary.read(REPORT) == SECOND

    # A whole area since a time, into a directory.
    code, out = await courier(
        env, "backup", "restore", "--tenant", "acme", "--since", started.isoformat(),
        "--to", str(tmp_path / "area"),
    )  # fmt: skip
    assert code == 0, out
    assert (tmp_path / "area" / "outbound" / "reports" / "hours.csv").read_bytes() == SECOND
    assert (tmp_path / "area" / "inbound" / "staff.csv").read_bytes() == b"id,name\n1,Ann\n"
    assert "2 files restored" in out

    code, out = await courier(
        env, "backup", "restore", "--tenant", "acme", "outbound/nothing.csv", "--to",
        str(tmp_path / "nothing.csv"),
    )  # fmt: skip
    assert code == 1 and "no confirmed backup" in out
    assert not (tmp_path / "nothing.csv").exists()


async def test_verify_and_status_report_what_the_backups_hold(
    db: Database,
    regions: Regions,
    regional_settings: Settings,
    tenants: Tenants,
    buckets: Buckets,
    uow: UnitOfWork,
    copier: Copier,
) -> None:
    await regions.primary(EU).put(REPORT, FIRST)
    await back_up(uow, copier, tenants, REPORT)
    env = cli_env(
        regional_settings, COURIER_REGIONS=regions_env(buckets), COURIER_DEFAULT_REGION=EU
    )

    code, out = await courier(env, "backup", "verify", "--tenant", "acme")
    assert code == 0 and "checked 1 backups: 0 mismatched" in out, out
    code, out = await courier(env, "backup", "status", "--tenant", "acme")
    assert code == 0 and "confirmed backups: 1; waiting: 0" in out, out

    # The backed-up version disappears from the bucket: verify says so and fails.
    version = await version_of(db, REPORT, FIRST)
    buckets.backup_client().delete_object(
        Bucket=buckets.backup[EU], Key=backup_key(REPORT), VersionId=version
    )
    code, out = await courier(env, "backup", "verify")
    assert code == 1 and "mismatch" in out and REPORT in out, out
