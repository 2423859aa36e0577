"""The directories every account has from its creation, and result files partners may
read but never change."""

from __future__ import annotations

from pathlib import Path

import asyncssh
import pytest

from courier.common.db.engine import Database
from courier.common.settings import Settings
from courier.common.storage import Storage
from courier.gateway.vfs import TenantTree, resolve
from tests.gateway.conftest import Partner, audit_soon
from tests.support.clients import openssh_available
from tests.support.staged import staged

needs_openssh = pytest.mark.skipif(not openssh_available(), reason="needs OpenSSH and sshpass")

RESULT = "tenants/acme/outbound/results/leave.csv.result.csv"


@pytest.mark.parametrize(
    ("path", "fixed", "result"),
    [
        ("/inbound/test", True, False),
        ("/outbound/results/", True, False),
        ("/outbound/test", True, False),
        ("/outbound/results/leave.csv.result.csv", False, True),
        ("/outbound//results/./x.csv", False, True),
        ("/inbound/results", False, False),
        ("/outbound/resultsheet.csv", False, False),
        ("/inbound/test/leave.csv", False, False),
    ],
)
def test_fixed_directories_and_result_files_are_known_from_the_path_alone(
    path: str, fixed: bool, result: bool
) -> None:
    loc = resolve(path)
    assert (loc.is_fixed, loc.is_directory, loc.is_result) == (fixed, fixed, result)


def test_a_test_upload_keeps_its_folder_in_the_name_the_importer_receives() -> None:
    loc = resolve("leave.csv", "/inbound/test")
    assert (loc.area, loc.relpath) == ("inbound", "test/leave.csv")


async def test_empty_tree_lists_the_fixed_directories(storage: Storage) -> None:
    tree = TenantTree(storage, "acme")
    assert [(e.name, e.is_dir) for e in await tree.listdir(resolve("/outbound"))] == [
        ("results", True),
        ("test", True),
    ]
    assert [e.name for e in await tree.listdir(resolve("/inbound"))] == ["test"]
    assert await tree.listdir(resolve("/outbound/results")) == []
    assert (await tree.stat(resolve("/inbound/test"))).is_dir


@needs_openssh
async def test_a_new_account_sees_the_fixed_directories(
    partner: Partner, gateway: Settings
) -> None:
    result = await partner.openssh(["ls /inbound", "ls /outbound", "cd /outbound/results", "pwd"])
    listed = " ".join(result.stdout.split())
    assert "ls /inbound /inbound/test sftp>" in listed, result.stdout
    assert "ls /outbound /outbound/results /outbound/test sftp>" in listed, result.stdout
    assert "Remote working directory: /outbound/results" in result.stdout
    assert "not found" not in result.stderr and "denied" not in result.stderr


@needs_openssh
async def test_result_files_can_be_read_but_never_changed(
    partner: Partner, gateway: Settings, storage: Storage, tmp_path: Path
) -> None:
    """Even with the delete right, which the default account has."""
    await storage.put(RESULT, b"status,accepted\n")
    mine = tmp_path / "mine.csv"
    mine.write_text("forged\n")
    result = await partner.openssh(
        [
            "cd /outbound/results",
            "ls",
            f"get leave.csv.result.csv {tmp_path / 'got.csv'}",
            "rm leave.csv.result.csv",
            "rename leave.csv.result.csv other.csv",
            f"put {mine} leave.csv.result.csv",
            f"put {mine} new.result.csv",
            "rmdir /outbound/results",
            "rm /inbound/test",
        ]
    )
    assert "leave.csv.result.csv" in result.stdout
    assert (tmp_path / "got.csv").read_bytes() == b"status,accepted\n"
    assert result.stderr.count("Permission denied") >= 5, result.stderr
    assert [o.key for o in await storage.list("tenants/acme/outbound")] == [RESULT]
    assert await storage.read(RESULT) == b"status,accepted\n"


async def test_result_files_are_read_only_to_asyncssh_too(
    partner: Partner, gateway: Settings, storage: Storage
) -> None:
    await storage.put(RESULT, b"status,accepted\n")
    async with await partner.connect() as conn, conn.start_sftp_client() as sftp:
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="read-only"):
            await sftp.remove("/outbound/results/leave.csv.result.csv")
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="read-only"):
            async with sftp.open("/outbound/results/leave.csv.result.csv", "wb") as f:
                await f.write(b"x")
        # Other pickup files stay the account's to delete.
        await storage.put("tenants/acme/outbound/test/sample.csv", b"s\n")
        await sftp.remove("/outbound/test/sample.csv")
    assert await storage.exists(RESULT)


@needs_openssh
async def test_a_file_uploaded_to_the_test_folder_is_announced_as_a_test_file(
    partner: Partner, gateway: Settings, db: Database, storage: Storage, tmp_path: Path
) -> None:
    (tmp_path / "leave.csv").write_text("a,b\n")
    result = await partner.openssh(
        [f"put {tmp_path / 'leave.csv'} /inbound/test/", "ls /inbound/test"]
    )
    assert "leave.csv" in result.stdout, result.stderr
    await audit_soon(db, "upload")
    [announced] = await staged(db, "courier.file.received")
    assert announced.name == "test/leave.csv"  # type: ignore[attr-defined]
    assert await storage.exists("tenants/acme/inbound/test/leave.csv")
