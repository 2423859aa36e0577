"""`courier tenants`: a tenant is only created in a region with a store, and `show` says
where its data lives without giving away a credential."""

from __future__ import annotations

import json

import pytest

from courier.common.settings import Settings
from tests.support.cli import cli_env, courier

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

SECRET = "wJalrXUtnFEMI-K7MDENG"
REGIONS = {
    "eu-west-2": {
        "storage_url": f"s3://ops:{SECRET}@eu-primary/courier?region=eu-west-2&token={SECRET}",
        "backup_url": f"s3://eu-backup?endpoint=http://minio:{SECRET}@minio:9000&region=eu-west-2",
        "sse": "aws:kms",
        "kms_key_id": "alias/courier-eu",
    },
    "ap-southeast-2": {"storage_url": "s3://ap-primary", "backup_url": None, "sse": "AES256"},
}


async def test_create_refuses_a_region_without_a_store_and_show_says_where_data_lives(
    settings: Settings,
) -> None:
    env = cli_env(settings, COURIER_REGIONS=json.dumps(REGIONS), COLUMNS="200")

    code, out = await courier(env, "tenants", "create", "acme", "--region", "us-east-1")
    assert code == 2, out
    assert "region 'us-east-1' has no configured store" in out
    assert "configured regions: ap-southeast-2, eu-west-2" in out

    code, out = await courier(env, "tenants", "create", "acme", "--region", "eu-west-2")
    assert (code, out.endswith("in region eu-west-2")) == (0, True), out

    code, out = await courier(env, "tenants", "show", "acme")
    assert code == 0, out
    assert "region: eu-west-2" in out
    assert "primary: s3://eu-primary/courier?region=eu-west-2" in out
    assert "backup: s3://eu-backup?endpoint=http%3A%2F%2Fminio%3A9000&region=eu-west-2" in out
    assert "encryption: aws:kms (key alias/courier-eu)" in out
    assert SECRET not in out and "ops" not in out
