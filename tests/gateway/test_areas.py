"""What a logged-in partner can reach: their tenant's areas, within their rights and quota."""

from __future__ import annotations

from pathlib import Path

import asyncssh
import pytest
from sqlalchemy import func, select

from courier.cli import provision
from courier.common.db.engine import Database
from courier.common.db.models import ReceivedFile
from courier.common.settings import Settings
from courier.common.storage import Storage
from tests.gateway.conftest import Partner, audit_lines, audit_soon
from tests.support.clients import openssh_available
from tests.support.services import eventually
from tests.support.staged import staged

needs_openssh = pytest.mark.skipif(not openssh_available(), reason="needs OpenSSH and sshpass")


async def _received(db: Database) -> list[ReceivedFile]:
    async with db.session() as s:
        return list(await s.scalars(select(ReceivedFile).order_by(ReceivedFile.received_at)))


@pytest.fixture
async def globex_file(db: Database, storage: Storage) -> str:
    """Another tenant's pickup file, which no acme account may ever see."""
    await provision.ensure_tenant(db, "globex", "Globex")
    await storage.put("tenants/globex/outbound/payroll.csv", b"secret,globex\n")
    return "tenants/globex/outbound/payroll.csv"


@needs_openssh
async def test_traversal_and_absolute_paths_stay_inside_the_tenant(
    partner: Partner, globex_file: str, gateway: Settings, tmp_path: Path
) -> None:
    result = await partner.openssh(
        [
            "get /outbound/../../globex/outbound/payroll.csv " + str(tmp_path / "a"),
            "get ../../../../tenants/globex/outbound/payroll.csv " + str(tmp_path / "b"),
            "get /etc/passwd " + str(tmp_path / "c"),
            "get /inbound/%2e%2e/%2e%2e/globex/outbound/payroll.csv " + str(tmp_path / "d"),
            "cd ..",
            "pwd",
            "ls /",
        ]
    )
    assert list(tmp_path.glob("[abcd]")) == []
    assert "Remote working directory: /\n" in result.stdout
    assert result.stdout.rstrip().endswith("sftp> ls /\n/inbound   /outbound  \nsftp> bye"), (
        result.stdout
    )
    assert (
        result.stderr.count("Couldn't stat remote file") + result.stderr.count("not found") >= 4
    ), result.stderr


async def test_another_tenants_files_are_invisible(
    partner: Partner, globex_file: str, gateway: Settings
) -> None:
    async with await partner.connect() as conn, conn.start_sftp_client() as sftp:
        assert sorted(await sftp.listdir("/outbound")) == [".", "..", "results", "test"]
        for path in ("/outbound/payroll.csv", "/../globex/outbound/payroll.csv", "/globex"):
            with pytest.raises(asyncssh.SFTPError):
                await sftp.stat(path)


@needs_openssh
async def test_symbolic_and_hard_links_are_refused(
    partner: Partner, gateway: Settings, storage: Storage, tmp_path: Path
) -> None:
    (tmp_path / "leave.csv").write_text("a,b\n")
    result = await partner.openssh(
        [
            f"put {tmp_path / 'leave.csv'} /inbound/leave.csv",
            "ln -s /inbound/leave.csv /inbound/sym.csv",
            "ln /inbound/leave.csv /inbound/hard.csv",
            "ln -s /etc/passwd /inbound/passwd",
        ]
    )
    assert "Permission denied" in result.stderr
    keys = [o.key for o in await storage.list("tenants/acme/inbound")]
    assert keys == ["tenants/acme/inbound/leave.csv"]


async def test_nobody_uploads_to_outbound(partner: Partner, gateway: Settings) -> None:
    async with await partner.connect() as conn, conn.start_sftp_client() as sftp:
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            async with sftp.open("/outbound/mine.csv", "wb") as f:
                await f.write(b"x")


@needs_openssh
async def test_upload_only_account_uploads_but_cannot_fetch_or_delete_pickups(
    make_partner, gateway: Settings, storage: Storage, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    uploader = await make_partner("acme-upload", can_read=False, can_delete=False)
    await storage.put("tenants/acme/outbound/timesheets.csv", b"t\n")
    (tmp_path / "leave.csv").write_text("a,b\n")
    result = await uploader.openssh(
        [
            f"put {tmp_path / 'leave.csv'} /inbound/",
            f"put {tmp_path / 'leave.csv'} /outbound/",
            f"get /outbound/timesheets.csv {tmp_path / 'got.csv'}",
            "rm /outbound/timesheets.csv",
        ]
    )
    assert "Permission denied" in result.stderr
    assert not (tmp_path / "got.csv").exists()
    assert await storage.exists("tenants/acme/inbound/leave.csv")
    assert not await storage.exists("tenants/acme/outbound/leave.csv")
    assert await storage.exists("tenants/acme/outbound/timesheets.csv")


async def test_read_only_account_downloads_but_cannot_upload(
    make_partner, gateway: Settings, storage: Storage, db: Database
) -> None:  # type: ignore[no-untyped-def]
    reader = await make_partner("acme-reader", can_upload=False, can_delete=False)
    await storage.put("tenants/acme/outbound/timesheets.csv", b"t1\n")
    async with await reader.connect() as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("/outbound/timesheets.csv", "rb") as f:
            assert await f.read() == b"t1\n"
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            async with sftp.open("/inbound/leave.csv", "wb") as f:
                await f.write(b"x")
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            await sftp.remove("/outbound/timesheets.csv")
    assert await storage.list("tenants/acme/inbound") == []
    assert [e.reason for e in await audit_soon(db, "upload_refused")] == ["read-only account"]


async def test_upload_over_quota_is_refused_and_leaves_nothing(
    make_partner, gateway: Settings, storage: Storage, db: Database
) -> None:  # type: ignore[no-untyped-def]
    small = await make_partner("acme-small", quota_bytes=64 * 1024)
    async with await small.connect() as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("/inbound/fits.csv", "wb") as f:
            await f.write(b"x" * 40_000)
        with pytest.raises(asyncssh.SFTPError, match="quota"):
            async with sftp.open("/inbound/too_big.csv", "wb") as f:
                await f.write(b"y" * 40_000)
        assert sorted(await sftp.listdir("/inbound")) == [".", "..", "fits.csv", "test"]
    assert [o.key for o in await storage.list("tenants/acme/inbound")] == [
        "tenants/acme/inbound/fits.csv"
    ]
    assert [r.name for r in await _received(db)] == ["fits.csv"]


async def test_reupload_of_same_name_is_a_new_file(
    partner: Partner, gateway: Settings, db: Database
) -> None:
    async with await partner.connect() as conn, conn.start_sftp_client() as sftp:
        for body in (b"first\n", b"second\n"):
            async with sftp.open("/inbound/leave.csv", "wb") as f:
                await f.write(body)
    files = await eventually(lambda: _files_when(db, 2))
    assert [f.name for f in files] == ["leave.csv", "leave.csv"]
    assert files[0].sha256 != files[1].sha256
    announced = await staged(db, "courier.file.received")
    assert {e.file_id for e in announced} == {f.id for f in files}  # type: ignore[attr-defined]


async def _files_when(db: Database, n: int) -> list[ReceivedFile] | None:
    files = await _received(db)
    return files if len(files) >= n else None


async def test_session_audit_records_transfers_deletes_and_bytes(
    partner: Partner, gateway: Settings, db: Database, storage: Storage
) -> None:
    await storage.put("tenants/acme/outbound/timesheets.csv", b"t" * 1000)
    async with await partner.connect() as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("/inbound/leave.csv", "wb") as f:
            await f.write(b"l" * 300)
        async with sftp.open("/outbound/timesheets.csv", "rb") as f:
            await f.read()
        await sftp.remove("/outbound/timesheets.csv")

    async def complete() -> list | None:  # type: ignore[type-arg]
        lines = await audit_lines(db)
        return lines if lines and lines[-1].kind == "disconnect" else None

    lines = await eventually(complete)
    assert [(e.kind, e.path, e.bytes) for e in lines] == [
        ("login_succeeded", None, None),
        ("upload", "/inbound/leave.csv", 300),
        ("download", "/outbound/timesheets.csv", 1000),
        ("delete", "/outbound/timesheets.csv", None),
        ("disconnect", None, 1300),
    ]
    assert {e.session for e in lines} == {lines[0].session}
    assert {(e.username, e.tenant, e.peer) for e in lines} == {
        ("acme-payroll", "acme", "127.0.0.1")
    }
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(ReceivedFile)) == 1
