"""Two regions, each with a primary bucket and a versioned, encrypted backup bucket.

Primary buckets live on the run's shared moto server; backup buckets on a moto server
of this folder's own, so a test can stop it (an S3 outage of the backups) without
touching anyone else. Moto keeps its buckets in the process, so they are all there
again when the server is started once more on the same port.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from courier.backup.copier import Copier
from courier.backup.tuning import BackupSettings
from courier.cli import provision
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.regions import Regions
from courier.common.settings import RegionStores, Settings
from courier.common.uow import UnitOfWork
from tests.support.s3 import S3_REGION, StoppableMoto, new_bucket, s3_client

EU, AP = "eu-west-2", "ap-southeast-2"
KMS_KEY = "alias/courier-ap"


@pytest.fixture(scope="session")
def backup_s3() -> Iterator[StoppableMoto]:
    server = StoppableMoto().start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Buckets:
    primary: dict[str, str]
    backup: dict[str, str]
    primary_endpoint: str
    backup_endpoint: str

    def backup_client(self) -> Any:
        return s3_client(self.backup_endpoint)

    def primary_client(self) -> Any:
        return s3_client(self.primary_endpoint)


def _url(bucket: str, endpoint: str) -> str:
    return f"s3://{bucket}/courier?endpoint={endpoint}&region={S3_REGION}"


@pytest.fixture
def buckets(s3_endpoint: str, backup_s3: StoppableMoto, monkeypatch: pytest.MonkeyPatch) -> Buckets:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "test")
    # An unreachable endpoint fails at once instead of after botocore's five tries.
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    primary = {region: new_bucket(s3_endpoint) for region in (EU, AP)}
    backup = {region: new_bucket(backup_s3.url) for region in (EU, AP)}
    client = s3_client(backup_s3.url)
    for bucket in backup.values():
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return Buckets(primary, backup, s3_endpoint, backup_s3.url)


def region_stores(buckets: Buckets) -> dict[str, RegionStores]:
    return {
        EU: RegionStores(
            storage_url=_url(buckets.primary[EU], buckets.primary_endpoint),
            backup_url=_url(buckets.backup[EU], buckets.backup_endpoint),
            sse="AES256",
        ),
        AP: RegionStores(
            storage_url=_url(buckets.primary[AP], buckets.primary_endpoint),
            backup_url=_url(buckets.backup[AP], buckets.backup_endpoint),
            sse="aws:kms",
            kms_key_id=KMS_KEY,
        ),
    }


@pytest.fixture
def regional_settings(settings: Settings, buckets: Buckets) -> Settings:
    return settings.model_copy(update={"regions": region_stores(buckets), "default_region": EU})


def regions_env(buckets: Buckets) -> str:
    return json.dumps({k: v.model_dump() for k, v in region_stores(buckets).items()})


@pytest.fixture
def regions(regional_settings: Settings) -> Regions:
    return Regions(regional_settings)


@pytest.fixture
def backup_settings() -> BackupSettings:
    return BackupSettings(
        reconcile_seconds=1,
        retry_min_seconds=0.5,
        retry_max_seconds=2,
        reconcile_min_age_seconds=0,
        multipart_threshold=5 * 1024 * 1024 + 1,
        multipart_chunk=5 * 1024 * 1024,
    )


@pytest.fixture
def copier(regions: Regions, backup_settings: BackupSettings) -> Copier:
    return Copier(regions, backup_settings)


@pytest.fixture
def uow(db: Database, regions: Regions) -> UnitOfWork:
    return UnitOfWork(db, regions.primary(EU))


@dataclass
class Tenants:
    eu: Tenant
    ap: Tenant


@pytest.fixture
async def tenants(db: Database, regions: Regions) -> AsyncIterator[Tenants]:
    eu = await provision.ensure_tenant(db, "acme", "Acme Ltd", region=EU, regions=regions)
    ap = await provision.ensure_tenant(db, "kiwi", "Kiwi Pty", region=AP, regions=regions)
    yield Tenants(eu, ap)


def backup_key(key: str) -> str:
    return f"courier/{key}"


def versions(buckets: Buckets, region: str, key: str) -> list[dict[str, Any]]:
    listed = buckets.backup_client().list_object_versions(
        Bucket=buckets.backup[region], Prefix=backup_key(key)
    )
    return [v for v in listed.get("Versions", []) if v["Key"] == backup_key(key)]


def new_id() -> uuid.UUID:
    return uuid.uuid4()
