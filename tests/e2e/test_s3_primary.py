"""The main flow with the tenant's primary store on S3: an OpenSSH upload through the
gateway, its import, the audit and the original from the console, and an export picked up
over SFTP. Every object lands in the region's bucket and nothing on the local disk."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import asyncssh
import pytest
from sqlalchemy import select

from courier.cli import provision
from courier.common.db.engine import Database
from courier.common.db.models import Import, ReceivedFile, Tenant
from courier.common.db.models_exports import Export, Timesheet
from courier.common.events import ALERT_RAISED, AlertRaised
from courier.common.regions import Regions
from courier.common.settings import RegionStores, Settings
from courier.common.storage import file_url, open_storage
from courier.gateway import admin
from courier.importer.results import result_name
from tests.exporter.conftest import DAY, make_spec, timesheets  # noqa: F401
from tests.gateway.conftest import new_key
from tests.support.cli import cli_env, courier
from tests.support.clients import asyncssh_connect, openssh_available, openssh_sftp
from tests.support.console import api_client, make_token
from tests.support.fixtures_data import leave_csv
from tests.support.s3 import s3_client
from tests.support.services import eventually, running
from tests.support.staged import staged

PASSWORD = "Corr3ct-Horse-Battery"
EU, AP = "eu-west-2", "ap-southeast-2"


@pytest.fixture
def local_root(tmp_path: Path) -> Path:
    """Where the embedded `file://` store keeps files: configured, and to stay empty."""
    return tmp_path / "storage"


@pytest.fixture
def s3_settings(settings: Settings, s3_storage_url: str, local_root: Path) -> Settings:
    """acme's region keeps its files in a moto bucket; the `local` region stays configured,
    so a write that ignored the region would land on disk and be seen."""
    regions = {
        EU: RegionStores(storage_url=s3_storage_url),
        "local": RegionStores(storage_url=file_url(local_root)),
    }
    return settings.model_copy(update={"regions": regions, "storage_url": file_url(local_root)})


@pytest.fixture
async def tenant(db: Database, s3_settings: Settings) -> Tenant:
    return await provision.ensure_tenant(
        db, "acme", "Acme Ltd", "Europe/London", region=EU, regions=Regions(s3_settings)
    )


@pytest.fixture
async def partner_key(db: Database, tenant: Tenant, leave_feed: None, tmp_path: Path) -> Path:
    """acme's partner account (password and key, allowlisted); its private key."""
    path = tmp_path / "partner_ed25519"
    public = new_key(path)
    await admin.create_account(
        db, tenant, "acme-payroll", password=PASSWORD, keys=[public], allow=["127.0.0.1/32"]
    )
    return path


def bucket_keys(s3_storage_url: str) -> list[str]:
    url = urlparse(s3_storage_url)
    endpoint = dict(p.split("=", 1) for p in url.query.split("&"))["endpoint"]
    listed = s3_client(endpoint).list_objects_v2(Bucket=url.netloc)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def _finished_import(db: Database) -> Import | None:
    async with db.session() as s:
        imp = await s.scalar(select(Import))
    return imp if imp is not None and imp.finished_at else None


@pytest.mark.skipif(not openssh_available(), reason="needs OpenSSH sftp and sshpass")
async def test_upload_import_audit_download_and_export_with_primary_storage_on_s3(
    s3_settings: Settings,
    s3_storage_url: str,
    db: Database,
    tenant: Tenant,
    partner_key: Path,
    timesheets: list[Timesheet],  # noqa: F811
    local_root: Path,
    tmp_path: Path,
) -> None:
    settings = s3_settings
    data = leave_csv("E100,annual,80.00,2026-11-01", "E200,sick,forty,2026-11-01")
    (tmp_path / "leave_20261101.csv").write_bytes(data)
    spec = await make_spec(db, tenant)
    regions_env = json.dumps({k: v.model_dump() for k, v in settings.regions.items()})
    env = cli_env(settings, COURIER_REGIONS=regions_env)

    async with (
        running("importer", settings),
        running("exporter", settings),
        running("gateway", settings),
        running("console", settings),
    ):
        sent = await openssh_sftp(
            settings.gateway_port,
            "acme-payroll",
            [f"put {tmp_path / 'leave_20261101.csv'} /inbound/"],
            password=PASSWORD,
            identity=partner_key,
        )
        assert "Uploading" in sent.stdout and "Couldn't" not in sent.stderr, sent.stderr
        imp = await eventually(lambda: _finished_import(db))
        assert (imp.status, imp.created, imp.errored) == ("completed_with_errors", 1, 1)

        base = f"http://127.0.0.1:{settings.console_port}"
        async with api_client(base, await make_token(db, "support")) as http:
            [listed] = (await http.get("/api/imports")).json()
            assert listed["file_name"] == "leave_20261101.csv"
            detail = (await http.get(f"/api/imports/{imp.id}")).json()
            by_row = {r["row_number"]: r for r in detail["records"]}
            assert (by_row[2]["action"], by_row[3]["action"]) == ("created", "errored")
            original = await http.get(f"/api/imports/{imp.id}/file")
            assert original.status_code == 200, original.text
            assert original.content == data
            assert original.headers["x-checksum-sha256"] == imp.sha256

        code, out = await courier(
            env, "exports", "run", spec.name, "--tenant", "acme", "--period", str(DAY)
        )
        assert code == 0 and "delivered" in out, out
        async with db.session() as s:
            [export] = list(await s.scalars(select(Export)))
        picked = tmp_path / "picked.csv"
        got = await openssh_sftp(
            settings.gateway_port,
            "acme-payroll",
            [f"get /outbound/{export.file_name} {picked}"],
            password=PASSWORD,
            identity=partner_key,
        )
        assert "Couldn't" not in got.stderr, got.stderr
        lines = picked.read_text().splitlines()
        assert lines[0].startswith("Employee,Name,Date") and len(lines) == export.rows + 1

    async with db.session() as s:
        received = await s.scalar(select(ReceivedFile))
    assert received is not None
    # Drop, archived original, result file, export build and pickup: each in acme's bucket.
    prefix = "courier/tenants/acme"
    assert bucket_keys(s3_storage_url) == sorted(
        [
            f"{prefix}/exports/{export.id}/{export.file_name}",
            f"{prefix}/inbound/leave_20261101.csv",
            f"{prefix}/outbound/{result_name(imp)}",
            f"{prefix}/outbound/{export.file_name}",
            f"{prefix}/received/{received.id}/leave_20261101.csv",
        ]
    )
    bucket = open_storage(s3_storage_url)
    assert await bucket.read(f"tenants/acme/outbound/{export.file_name}") == picked.read_bytes()
    assert await bucket.read(f"tenants/acme/received/{received.id}/leave_20261101.csv") == data
    assert files_under(local_root) == []


async def test_a_write_refused_for_its_region_tells_the_partner_only_permission_denied(
    s3_settings: Settings, db: Database, tenant: Tenant, tmp_path: Path
) -> None:
    # globex was placed in AP while AP was configured; AP has since left the configuration.
    with_ap = s3_settings.model_copy(
        update={"regions": {**s3_settings.regions, AP: RegionStores(storage_url="s3://ap-x")}}
    )
    globex = await provision.ensure_tenant(
        db, "globex", "Globex", region=AP, regions=Regions(with_ap)
    )
    key = tmp_path / "globex_ed25519"
    await admin.create_account(
        db, globex, "globex-ops", password=PASSWORD, keys=[new_key(key)], allow=["127.0.0.1/32"]
    )
    (tmp_path / "leave_1.csv").write_bytes(b"x\n")
    told: list[str] = []

    async with running("gateway", s3_settings):
        result = await openssh_sftp(
            s3_settings.gateway_port,
            "globex-ops",
            [f"put {tmp_path / 'leave_1.csv'} /inbound/", "ls /inbound"],
            password=PASSWORD,
            identity=key,
        )
        assert 'dest open "/inbound/leave_1.csv": Permission denied' in result.stderr
        told.append(result.stderr)
        async with (
            await asyncssh_connect(
                s3_settings.gateway_port, "globex-ops", PASSWORD, client_keys=[str(key)]
            ) as conn,
            conn.start_sftp_client() as sftp,
        ):
            # Clients other than OpenSSH show the server's reason: it must say no more.
            for refused in (
                sftp.open("/inbound/leave_1.csv", "wb"),
                sftp.open("/outbound/report.csv", "rb"),
                sftp.listdir("/inbound"),
                sftp.stat("/inbound/leave_1.csv"),
                sftp.remove("/inbound/leave_1.csv"),
            ):
                with pytest.raises(asyncssh.SFTPPermissionDenied) as denied:
                    await refused
                assert denied.value.reason == "permission denied"
                told.append(denied.value.reason)
    for leak in (AP, EU, "local", "s3:", "ap-x", "acme", "region", "configured"):
        assert all(leak not in text for text in told), leak
    # The refused write is the operator's to see: alerted, with the tenant and the reason.
    alerts = [a for a in await staged(db, ALERT_RAISED) if isinstance(a, AlertRaised)]
    assert alerts and {(a.kind, a.tenant) for a in alerts} == {("region_violation", "globex")}
