"""File storage runs out of space: the upload that does not fit is refused, whole, and the
gateway goes on serving everyone else.

acme's region keeps its files on a 1 MiB tmpfs, globex's on the ordinary disk; the gateway
and the importer are processes of their own, as in a pod.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncssh
import pytest
from sqlalchemy import func, select

from courier.cli import provision
from courier.common.db.engine import Database
from courier.common.db.models import Import, ReceivedFile, Tenant
from courier.common.regions import Regions
from courier.common.settings import RegionStores, Settings
from courier.common.storage import file_url
from courier.gateway import admin
from tests.support.clients import (
    SftpResult,
    asyncssh_connect,
    openssh_available,
    openssh_sftp,
)
from tests.support.deployed import deployment
from tests.support.fixtures_data import leave_csv
from tests.support.outages import logs_on_failure, service_env, small_disk, tmpfs_unavailable
from tests.support.services import eventually

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(tmpfs_unavailable() is not None, reason=str(tmpfs_unavailable())),
    pytest.mark.skipif(not openssh_available(), reason="needs OpenSSH sftp and sshpass"),
]

PASSWORD = "Corr3ct-Horse-Battery"
SMALL, ROOMY = "small-disk", "roomy-disk"


async def _partner(db: Database, settings: Settings, slug: str, region: str) -> Tenant:
    tenant = await provision.ensure_tenant(
        db, slug, slug.title(), "Europe/London", region=region, regions=Regions(settings)
    )
    await provision.upsert_feed(db, tenant, "leave-balances", "leave_balances", "leave_*.csv", {})
    await admin.create_account(
        db, tenant, f"{slug}-payroll", password=PASSWORD, auth_policy="password",
        allow=["127.0.0.1/32"],
    )  # fmt: skip
    return tenant


async def _put(port: int, slug: str, local: Path) -> SftpResult:
    return await openssh_sftp(
        port, f"{slug}-payroll", [f"put {local} /inbound/{local.name}"], password=PASSWORD
    )


async def _put_with_asyncssh(port: int, slug: str, local: Path) -> str:
    """The reason the gateway gave for refusing the upload, as asyncssh's client shows it."""
    async with (
        await asyncssh_connect(port, f"{slug}-payroll", PASSWORD) as conn,
        conn.start_sftp_client() as sftp,
    ):
        with pytest.raises(asyncssh.SFTPError) as refused:
            await sftp.put(str(local), f"/inbound/{local.name}")
    return str(refused.value.reason)


async def _imported(db: Database, name: str) -> Import | None:
    async with db.session() as s:
        imp = await s.scalar(select(Import).where(Import.file_name == name))
    return imp if imp is not None and imp.finished_at is not None else None


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


async def test_an_upload_that_does_not_fit_is_refused_whole_and_others_are_served(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    with small_disk(tmp_path / "disk", "1m") as disk:
        roomy = tmp_path / "roomy"
        own = settings.model_copy(
            update={
                "regions": {
                    SMALL: RegionStores(storage_url=file_url(disk)),
                    ROOMY: RegionStores(storage_url=file_url(roomy)),
                },
                "default_region": ROOMY,
                "storage_url": file_url(roomy),
                "outbox_relay_seconds": 0.5,
            }
        )
        await _partner(db, own, "acme", SMALL)
        await _partner(db, own, "globex", ROOMY)
        # 2 MiB of valid rows: any prefix of it that ended on a row would import.
        rows = [f"E{i:06d},annual,{i % 200}.00,2026-11-01" for i in range(70_000)]
        big = tmp_path / "leave_big.csv"
        big.write_bytes(leave_csv(*rows))
        assert big.stat().st_size > 2 * 1024 * 1024
        sent: dict[str, Path] = {}
        for name, data in (
            ("leave_globex_during.csv", leave_csv("G1,annual,8.00,2026-11-01")),
            ("leave_globex_after.csv", leave_csv("G2,annual,8.00,2026-11-01")),
            ("leave_acme_after.csv", leave_csv("A1,annual,8.00,2026-11-01")),
        ):
            sent[name] = tmp_path / name
            sent[name].write_bytes(data)

        with deployment(tmp_path / "services", service_env(own)) as stack, logs_on_failure(stack):
            importer, gateway = (
                stack.add("importer", start=False),
                stack.add("gateway", start=False),
            )
            for service in (importer.launch(), gateway.launch()):
                service.wait_ready()
            refused, during = await asyncio.gather(
                _put(own.gateway_port, "acme", big),
                _put(own.gateway_port, "globex", sent["leave_globex_during.csv"]),
            )
            # OpenSSH's sftp shows the status only (SFTP v3 has no "no space" code);
            # clients that show the server's message tell the partner what happened.
            assert 'write remote "/inbound/leave_big.csv": Failure' in refused.stderr, refused
            told = await _put_with_asyncssh(own.gateway_port, "acme", big)
            assert told == (
                "/inbound/leave_big.csv: no space left to store this file; it was not "
                "received, send it again later"
            )
            assert during.returncode == 0 and "Couldn't" not in during.stderr, during.stderr
            await eventually(lambda: _imported(db, "leave_globex_during.csv"), within=60)

            # The space the refused upload took is free again: the same partner's next
            # file, and another tenant's, go through the same gateway process.
            acme_after = await _put(own.gateway_port, "acme", sent["leave_acme_after.csv"])
            globex_after = await _put(own.gateway_port, "globex", sent["leave_globex_after.csv"])
            for result in (acme_after, globex_after):
                assert result.returncode == 0 and "Couldn't" not in result.stderr, result.stderr
            for name in ("leave_acme_after.csv", "leave_globex_after.csv"):
                imp = await eventually(lambda n=name: _imported(db, n), within=60)  # type: ignore[misc]
                assert (imp.status, imp.created) == ("completed", 1)
            assert gateway.starts == 1 and gateway.alive()

        async with db.session() as s:
            received = sorted(await s.scalars(select(ReceivedFile.name)))
            imports = await s.scalar(select(func.count()).select_from(Import))
        # Nothing of the refused file was recorded, stored or imported.
        assert received == sorted(sent)
        assert imports == len(sent)
        assert "leave_big.csv" not in " ".join(_files(disk))
        assert not [f for f in _files(disk) if f.startswith(".tmp/")]
