"""The gateway with its primary storage on S3: partners' transfers go through the storage
interface, so uploads and downloads (whole, ranged, out of order) come back byte for byte."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import asyncssh
import pytest
from sqlalchemy import select

from courier.common.db.engine import Database
from courier.common.db.models import ReceivedFile
from courier.common.settings import Settings
from courier.common.storage import S3Storage, Storage, open_storage
from tests.gateway.conftest import Partner, audit_soon
from tests.support.clients import openssh_available
from tests.support.services import eventually
from tests.support.staged import staged

MiB = 1024 * 1024


@pytest.fixture
def storage(s3_storage_url: str) -> Storage:
    return open_storage(s3_storage_url)


@pytest.fixture
def gateway_settings(gateway_settings: Settings, s3_storage_url: str) -> Settings:
    return gateway_settings.model_copy(update={"storage_url": s3_storage_url})


def no_pending_uploads(storage: Storage) -> bool:
    assert isinstance(storage, S3Storage)
    return not storage.client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads")


async def _announced(db: Database) -> ReceivedFile | None:
    """The recorded file, once its event is staged with it."""
    async with db.session() as s:
        row = await s.scalar(select(ReceivedFile))
    events = await staged(db, "courier.file.received")
    return row if row is not None and [e.file_id for e in events] == [row.id] else None  # type: ignore[attr-defined]


@pytest.mark.skipif(not openssh_available(), reason="needs OpenSSH and sshpass")
async def test_openssh_upload_and_download_through_s3(
    partner: Partner, gateway: Settings, storage: Storage, db: Database, tmp_path: Path
) -> None:
    data = os.urandom(13 * MiB + 4321)  # more than one part, more than one read window
    source, back = tmp_path / "payroll.bin", tmp_path / "back.bin"
    source.write_bytes(data)
    result = await partner.openssh(
        [f"put {source} /inbound/payroll.bin", f"get /inbound/payroll.bin {back}"]
    )
    assert result.returncode == 0 and "Couldn't" not in result.stderr, result.stderr
    assert back.read_bytes() == data
    assert await storage.read("tenants/acme/inbound/payroll.bin") == data
    assert no_pending_uploads(storage)

    async with await partner.connect() as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("/inbound/payroll.bin", "rb") as f:
            assert await f.read(100_000, 9 * MiB + 7) == data[9 * MiB + 7 : 9 * MiB + 100_007]
            assert await f.read(10, len(data) - 4) == data[-4:]
        assert (await sftp.stat("/inbound/payroll.bin")).size == len(data)

    [upload] = await audit_soon(db, "upload")
    downloads = await audit_soon(db, "download", 2)
    assert upload.bytes == len(data) and downloads[0].bytes == len(data)
    received = await eventually(lambda: _announced(db))
    assert received.sha256 == hashlib.sha256(data).hexdigest()


async def test_out_of_order_upload_through_s3_comes_back_whole(
    partner: Partner, gateway: Settings, storage: Storage
) -> None:
    data = os.urandom(10 * MiB + 3)
    block = 256 * 1024
    async with await partner.connect() as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("/inbound/shuffled.bin", "wb") as f:
            for offset in reversed(range(0, len(data), block)):
                await f.write(data[offset : offset + block], offset)
        async with sftp.open("/inbound/shuffled.bin", "rb") as f:
            assert await f.read() == data
    assert await storage.read("tenants/acme/inbound/shuffled.bin") == data
    assert no_pending_uploads(storage)


async def test_missing_file_on_s3_is_no_such_file(partner: Partner, gateway: Settings) -> None:
    async with await partner.connect() as conn, conn.start_sftp_client() as sftp:
        with pytest.raises(asyncssh.SFTPNoSuchFile):
            await sftp.open("/outbound/nothing.csv", "rb")
