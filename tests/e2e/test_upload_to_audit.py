"""A partner's file travels SFTP → bus → importer → audit, and the audit serves it back."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import asyncssh
import pytest
from sqlalchemy import func, select

from courier.common.db.engine import Database
from courier.common.db.models import LeaveBalance, ReceivedFile, Tenant
from courier.common.settings import Settings
from courier.gateway import admin
from tests.support.clients import asyncssh_connect, openssh_available, openssh_sftp
from tests.support.console import api_client, make_token
from tests.support.fixtures_data import leave_csv
from tests.support.imports import all_imports, finished_imports
from tests.support.services import running

PASSWORD = "Corr3ct-Horse-Battery"


@pytest.fixture
def partner_key(tmp_path: Path) -> Path:
    path = tmp_path / "partner_ed25519"
    key = asyncssh.generate_private_key("ssh-ed25519")
    key.write_private_key(path)
    path.chmod(0o600)
    return path


@pytest.fixture
async def partner(db: Database, tenant: Tenant, leave_feed: None, partner_key: Path) -> str:
    """A partner as the gateway expects one: password and key, from an allowlisted address."""
    public = asyncssh.read_private_key(partner_key).export_public_key().decode()
    await admin.create_account(
        db, tenant, "acme-payroll", password=PASSWORD, keys=[public], allow=["127.0.0.1/32"]
    )
    return "acme-payroll"


async def _connect(port: int, user: str, key: Path) -> asyncssh.SSHClientConnection:
    return await asyncssh_connect(port, user, PASSWORD, client_keys=[str(key)])


async def _balances(db: Database) -> dict[tuple[str, str], Decimal]:
    async with db.session() as s:
        rows = await s.scalars(select(LeaveBalance))
        return {(r.employee_id, r.leave_type): Decimal(r.balance_hours) for r in rows}


@pytest.mark.skipif(not openssh_available(), reason="needs OpenSSH sftp and sshpass")
async def test_openssh_upload_is_imported_audited_and_downloadable(
    settings: Settings, db: Database, partner: str, partner_key: Path, tmp_path: Path
) -> None:
    first = leave_csv(
        "E100,annual,80.00,2026-11-01",
        "E100,sick,16.5,2026-11-01",
        "E200,annual,40,2026-11-01",
    )
    (tmp_path / "leave_20261101.csv").write_bytes(first)
    async with (
        running("importer", settings),
        running("gateway", settings),
        running("console", settings),
    ):
        result = await openssh_sftp(
            settings.gateway_port,
            partner,
            [f"put {tmp_path / 'leave_20261101.csv'} /inbound/"],
            password=PASSWORD,
            identity=partner_key,
        )
        assert "Uploading" in result.stdout, result.stderr
        [imp] = await finished_imports(db, 1)
        assert (imp.status, imp.created, imp.updated, imp.unchanged, imp.errored) == (
            "completed", 3, 0, 0, 0,
        )  # fmt: skip
        assert await _balances(db) == {
            ("E100", "annual"): Decimal("80.00"),
            ("E100", "sick"): Decimal("16.50"),
            ("E200", "annual"): Decimal("40.00"),
        }

        # The second file changes one balance, keeps one, has one bad row and one new row.
        second = leave_csv(
            "E100,annual,72.00,2026-11-01",
            "E100,sick,16.50,2026-11-01",
            "E200,annual,forty,2026-11-01",
            "E300,annual,8,2026-11-02",
        )
        (tmp_path / "leave_20261102.csv").write_bytes(second)
        await openssh_sftp(
            settings.gateway_port,
            partner,
            [f"put {tmp_path / 'leave_20261102.csv'} /inbound/"],
            password=PASSWORD,
            identity=partner_key,
        )
        _, imp2 = await finished_imports(db, 2)
        assert (imp2.status, imp2.created, imp2.updated, imp2.unchanged, imp2.errored) == (
            "completed_with_errors", 1, 1, 1, 1,
        )  # fmt: skip
        balances = await _balances(db)
        assert balances[("E100", "annual")] == Decimal("72.00")
        assert balances[("E200", "annual")] == Decimal("40.00")  # errored row left it alone
        assert balances[("E300", "annual")] == Decimal("8.00")

        base = f"http://127.0.0.1:{settings.console_port}"
        async with api_client(base, await make_token(db, "support")) as http:
            listing = (await http.get("/api/imports")).json()
            assert {i["file_name"] for i in listing} == {"leave_20261101.csv", "leave_20261102.csv"}
            detail = (await http.get(f"/api/imports/{imp2.id}")).json()
            by_row = {r["row_number"]: r for r in detail["records"]}
            assert by_row[2]["action"] == "updated"
            assert by_row[2]["changes"]["balance_hours"] == ["80.00", "72.00"]
            assert by_row[3]["action"] == "unchanged"
            assert by_row[4]["action"] == "errored"
            assert by_row[4]["error"] == "balance_hours: 'forty' is not a number"
            assert by_row[5]["action"] == "created"
            download = await http.get(f"/api/imports/{imp2.id}/file")
            assert download.status_code == 200
            assert download.content == second
            assert download.headers["x-checksum-sha256"] == imp2.sha256


async def test_asyncssh_upload_and_wrong_header_is_rejected_whole(
    settings: Settings, db: Database, partner: str, partner_key: Path
) -> None:
    good = leave_csv("E1,annual,10,2026-11-01")
    bad = leave_csv("E2,annual,5,2026-11-01", header="employee,leave_type,hours,as_of\n")
    async with running("importer", settings), running("gateway", settings):
        async with (
            await _connect(settings.gateway_port, partner, partner_key) as conn,
            conn.start_sftp_client() as sftp,
        ):
            async with sftp.open("/inbound/leave_good.csv", "wb") as f:
                await f.write(good)
            await finished_imports(db, 1)
            async with sftp.open("/inbound/leave_bad.csv", "wb") as f:
                await f.write(bad)
            assert sorted(await sftp.listdir("/inbound")) == [
                ".", "..", "leave_bad.csv", "leave_good.csv", "test",
            ]  # fmt: skip
        imports = await finished_imports(db, 2)
    good_imp, bad_imp = imports
    assert good_imp.status == "completed" and good_imp.created == 1
    assert bad_imp.status == "rejected"
    assert bad_imp.error == (
        "wrong header: missing columns: employee_id, balance_hours; "
        "unexpected columns: employee, hours"
    )
    assert bad_imp.details["missing"] == ["employee_id", "balance_hours"]
    assert bad_imp.details["unexpected"] == ["employee", "hours"]
    # A rejected file changes no domain row.
    assert await _balances(db) == {("E1", "annual"): Decimal("10.00")}


async def test_temporary_name_is_announced_only_after_rename(
    settings: Settings, db: Database, partner: str, partner_key: Path
) -> None:
    async with running("importer", settings), running("gateway", settings):
        async with (
            await _connect(settings.gateway_port, partner, partner_key) as conn,
            conn.start_sftp_client() as sftp,
        ):
            async with sftp.open("/inbound/leave_x.csv.filepart", "wb") as f:
                await f.write(leave_csv("E9,annual,1,2026-11-01"))
            await asyncio.sleep(1)
            assert await all_imports(db) == []
            await sftp.rename("/inbound/leave_x.csv.filepart", "/inbound/leave_x.csv")
        [imp] = await finished_imports(db, 1)
    assert imp.file_name == "leave_x.csv" and imp.created == 1


async def test_aborted_upload_is_neither_visible_nor_announced(
    settings: Settings, db: Database, partner: str, partner_key: Path, storage
) -> None:
    async with running("gateway", settings):
        conn = await _connect(settings.gateway_port, partner, partner_key)
        sftp = await conn.start_sftp_client()
        f = await sftp.open("/inbound/leave_cut.csv", "wb")
        await f.write(b"employee_id,leave_type,balance_hours,as_of\nE1,annual,")
        conn.abort()  # the client dies mid-transfer
        await asyncio.sleep(1)
        async with (
            await _connect(settings.gateway_port, partner, partner_key) as conn2,
            conn2.start_sftp_client() as sftp2,
        ):
            assert await sftp2.listdir("/inbound") == [".", "..", "test"]
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(ReceivedFile)) == 0
    assert await storage.list("tenants/acme") == []
