"""Every file of a tenant lives only in its region's stores, encrypted as the region says;
a write that cannot stay in its region is refused before a byte is written, and alerted."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from courier.cli import provision
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_outbox import OutboxEvent
from courier.common.events import ALERT_RAISED, AlertRaised
from courier.common.regions import (
    RegionalStorage,
    RegionNotConfigured,
    Regions,
    RegionViolation,
    public_url,
)
from courier.common.settings import RegionStores, Settings
from courier.common.storage import MiB, S3Storage, StorageError, sha256_of

EU, AP = "eu-west-2", "ap-southeast-2"
KMS_KEY = "arn:aws:kms:ap-southeast-2:123456789012:key/courier-ap"


def s3(endpoint: str, region: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def bucket_in(endpoint: str, region: str, role: str) -> str:
    name = f"courier-{role}-{region}-{uuid.uuid4().hex[:8]}"
    s3(endpoint, region).create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": region}
    )
    return name


def keys_in(endpoint: str, bucket: str) -> list[str]:
    listed = s3(endpoint, EU).list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listed.get("Contents", []))


@pytest.fixture
def aws_test_credentials() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update({k: "test" for k in saved})
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def buckets(s3_endpoint: str, aws_test_credentials: None) -> dict[str, str]:
    """A primary and a backup bucket in each of two regions."""
    return {
        f"{region}/{role}": bucket_in(s3_endpoint, region, role)
        for region in (EU, AP)
        for role in ("primary", "backup")
    }


@pytest.fixture
def two_regions(settings: Settings, s3_endpoint: str, buckets: dict[str, str]) -> Settings:
    """eu-west-2 with SSE-S3, ap-southeast-2 with SSE-KMS and a key of its own."""

    def url(region: str, role: str) -> str:
        return f"s3://{buckets[f'{region}/{role}']}?endpoint={s3_endpoint}&region={region}"

    return settings.model_copy(
        update={
            "regions": {
                EU: RegionStores(
                    storage_url=url(EU, "primary"), backup_url=url(EU, "backup"), sse="AES256"
                ),
                AP: RegionStores(
                    storage_url=url(AP, "primary"),
                    backup_url=url(AP, "backup"),
                    sse="aws:kms",
                    kms_key_id=KMS_KEY,
                ),
            },
            "default_region": EU,
        }
    )


@pytest.fixture
async def regional(two_regions: Settings, db: Database) -> AsyncIterator[RegionalStorage]:
    storage = RegionalStorage(Regions(two_regions), db)
    try:
        yield storage
    finally:
        await storage.close()


async def outbox_alerts(db: Database) -> list[AlertRaised]:
    async with db.session() as s:
        rows = await s.scalars(select(OutboxEvent).where(OutboxEvent.subject == ALERT_RAISED))
        return [AlertRaised.model_validate(r.payload) for r in rows]


async def test_each_tenants_files_land_only_in_its_regions_primary_bucket(
    db: Database,
    regional: RegionalStorage,
    two_regions: Settings,
    s3_endpoint: str,
    buckets: dict[str, str],
) -> None:
    regions = Regions(two_regions)
    await provision.ensure_tenant(db, "acme", "Acme", regions=regions)  # the default: eu
    big = os.urandom(9 * MiB)  # more than one part: a multipart upload
    for slug in ("acme", "kiwi"):
        if slug == "kiwi":
            # Created after the first lookup: the next write reads the table again.
            await provision.ensure_tenant(db, "kiwi", "Kiwi", region=AP, regions=regions)
        await regional.put(f"tenants/{slug}/inbound/leave.csv", b"id,days\n1,3\n")
        writer = await regional.open_write(f"tenants/{slug}/outbound/big.bin")
        for at in range(0, len(big), MiB):
            await writer.write(big[at : at + MiB])
        await writer.finalize()
        await regional.copy(
            f"tenants/{slug}/inbound/leave.csv", f"tenants/{slug}/received/1/leave.csv"
        )

    files = ["inbound/leave.csv", "outbound/big.bin", "received/1/leave.csv"]
    assert keys_in(s3_endpoint, buckets[f"{EU}/primary"]) == [f"tenants/acme/{f}" for f in files]
    assert keys_in(s3_endpoint, buckets[f"{AP}/primary"]) == [f"tenants/kiwi/{f}" for f in files]
    assert keys_in(s3_endpoint, buckets[f"{EU}/backup"]) == []
    assert keys_in(s3_endpoint, buckets[f"{AP}/backup"]) == []

    # Reads go to the same region; a listing above any tenant sees every region.
    assert await regional.read("tenants/kiwi/inbound/leave.csv") == b"id,days\n1,3\n"
    assert (await sha256_of(regional, "tenants/acme/outbound/big.bin"))[1] == len(big)
    assert [o.key for o in await regional.list("tenants/")] == sorted(
        f"tenants/{t}/{f}" for t in ("acme", "kiwi") for f in files
    )

    # Every object is encrypted as its region says: puts, multipart uploads and copies.
    for f in files:
        eu = s3(s3_endpoint, EU).head_object(
            Bucket=buckets[f"{EU}/primary"], Key=f"tenants/acme/{f}"
        )
        ap = s3(s3_endpoint, AP).head_object(
            Bucket=buckets[f"{AP}/primary"], Key=f"tenants/kiwi/{f}"
        )
        assert eu["ServerSideEncryption"] == "AES256", f
        assert (ap["ServerSideEncryption"], ap["SSEKMSKeyId"]) == ("aws:kms", KMS_KEY), f


async def test_a_tenant_in_a_region_without_a_store_is_not_created(
    db: Database, two_regions: Settings
) -> None:
    with pytest.raises(RegionNotConfigured) as refused:
        await provision.ensure_tenant(
            db, "yankee", "Yankee", region="us-east-1", regions=Regions(two_regions)
        )
    assert "'us-east-1'" in str(refused.value)
    assert f"{AP}, {EU}" in str(refused.value)
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Tenant)) == 0


async def test_a_tenant_is_not_moved_to_a_region_without_a_store(
    db: Database, two_regions: Settings
) -> None:
    regions = Regions(two_regions)
    await provision.ensure_tenant(db, "acme", "Acme", region=EU, regions=regions)
    with pytest.raises(RegionNotConfigured):
        await provision.set_region(db, "acme", "us-east-1", regions)
    assert (await provision.get_tenant(db, "acme")).region == EU


async def test_a_tenant_with_files_is_not_moved_without_them_unless_forced(
    db: Database, two_regions: Settings, regional: RegionalStorage
) -> None:
    regions = Regions(two_regions)
    await provision.ensure_tenant(db, "acme", "Acme", region=EU, regions=regions)
    await regional.put("tenants/acme/inbound/leave.csv", b"id,days\n")
    with pytest.raises(provision.ProvisionError, match="1 files in region 'eu-west-2'"):
        await provision.set_region(db, "acme", AP, regions)
    assert (await provision.get_tenant(db, "acme")).region == EU
    assert (await provision.set_region(db, "acme", AP, regions, force=True)).region == AP


async def test_a_write_for_a_tenant_whose_region_was_removed_is_refused_and_alerted(
    db: Database, two_regions: Settings, s3_endpoint: str, buckets: dict[str, str]
) -> None:
    await provision.ensure_tenant(db, "acme", "Acme", region=EU, regions=Regions(two_regions))
    # The configuration loses eu-west-2; acme is still placed there.
    only_ap = two_regions.model_copy(
        update={"regions": {AP: two_regions.regions[AP]}, "default_region": AP}
    )
    regional = RegionalStorage(Regions(only_ap), db)
    try:
        key = "tenants/acme/inbound/leave.csv"
        with pytest.raises(RegionViolation, match="no configured store"):
            await regional.put(key, b"id,days\n1,3\n")
        with pytest.raises(RegionViolation):
            await regional.open_write(key)
        with pytest.raises(RegionViolation, match="names no tenant"):
            await regional.put("exports/orphan.csv", b"x")
        await regional.alerts_staged()
    finally:
        await regional.close()

    for bucket in buckets.values():
        assert keys_in(s3_endpoint, bucket) == []
    alerts = await outbox_alerts(db)
    assert [a.kind for a in alerts] == ["region_violation"] * 3
    acme = [a for a in alerts if a.tenant == "acme"]
    assert len(acme) == 2 and {a.details["key"] for a in acme} == {key}
    assert {a.details["region"] for a in acme} == {EU}
    assert acme[0].tenant_id == (await provision.get_tenant(db, "acme")).id
    # Repeated refusals of one cause fold into one incident.
    assert len({a.cause_key for a in acme}) == 1
    [orphan] = [a for a in alerts if a.tenant is None]
    assert orphan.details["key"] == "exports/orphan.csv"


async def test_without_regions_configured_the_one_region_is_the_storage_url(
    settings: Settings, db: Database, tenant: Tenant
) -> None:
    regions = Regions(settings)
    assert regions.names() == ["local"] and tenant.region == "local"
    assert regions.primary("local").url == settings.storage_url
    assert regions.backup("local") is None
    regional = RegionalStorage(regions, db)
    try:
        await regional.put("tenants/acme/inbound/a.csv", b"a")
        assert (await regional.stat("tenants/acme/inbound/a.csv")).size == 1
    finally:
        await regional.close()


async def test_encryption_set_in_the_store_url_applies_to_puts_and_multipart_uploads(
    s3_endpoint: str, aws_test_credentials: None
) -> None:
    bucket = bucket_in(s3_endpoint, EU, "primary")
    store = S3Storage(f"s3://{bucket}/p?endpoint={s3_endpoint}&region={EU}&sse=AES256")
    await store.put("small", b"x")
    writer = await store.open_write("large")
    await writer.write(os.urandom(9 * MiB))
    await writer.finalize()
    for key in ("p/small", "p/large"):
        head = s3(s3_endpoint, EU).head_object(Bucket=bucket, Key=key)
        assert head["ServerSideEncryption"] == "AES256"


def test_a_wrong_encryption_setting_stops_the_store_from_opening() -> None:
    with pytest.raises(StorageError, match="use one of AES256, aws:kms"):
        S3Storage("s3://b?sse=rot13", client=object())
    with pytest.raises(StorageError, match="needs server-side encryption 'aws:kms'"):
        S3Storage("s3://b?sse=AES256&kms_key_id=k", client=object())


def test_store_urls_are_printed_without_credentials() -> None:
    url = "s3://u:secret@bucket/p?endpoint=http://ak:sk@minio:9000&region=eu&token=t0ken"
    shown = public_url(url)
    assert shown == "s3://bucket/p?endpoint=http%3A%2F%2Fminio%3A9000&region=eu"
    assert "secret" not in shown and "t0ken" not in shown and "sk" not in shown
