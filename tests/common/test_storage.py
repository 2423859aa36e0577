"""Both storage backends behave the same: atomic finalize, streaming reads, listing, copies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from courier.common.storage import (
    NotFound,
    S3Storage,
    Storage,
    StorageError,
    file_url,
    open_storage,
    sha256_of,
)
from tests.support.infra import free_port


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(params=["file", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "file":
        return open_storage(file_url(tmp_path / "store"))
    endpoint = request.getfixturevalue("s3_endpoint")
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="eu-west-2",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    bucket = f"b{tmp_path.name.lower().replace('_', '-')[-40:]}"
    client.create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-2"}
    )
    return S3Storage(f"s3://{bucket}/courier", client=client)


async def test_written_object_is_invisible_until_finalized(backend: Storage) -> None:
    writer = await backend.open_write("tenants/a/inbound/x.csv")
    await writer.write(b"hello ")
    await writer.write(b"world")
    assert not await backend.exists("tenants/a/inbound/x.csv")
    info = await writer.finalize()
    assert info.size == 11
    assert await backend.read("tenants/a/inbound/x.csv") == b"hello world"


async def test_aborted_write_leaves_nothing(backend: Storage) -> None:
    writer = await backend.open_write("tenants/a/inbound/cut.csv")
    await writer.write(b"partial")
    await writer.abort()
    assert await backend.list("tenants/a") == []


async def test_random_access_writes_assemble_in_order(backend: Storage) -> None:
    writer = await backend.open_write("k/file.bin")
    await writer.write(b"world", offset=6)
    await writer.write(b"hello ", offset=0)
    await writer.finalize()
    assert await backend.read("k/file.bin") == b"hello world"


async def test_large_object_streams_in_chunks_and_ranges(backend: Storage) -> None:
    data = bytes(range(256)) * 12_000  # ~3 MB, several chunks
    await backend.put("big/blob", data)
    chunks = [c async for c in backend.get("big/blob")]
    assert len(chunks) > 1 and b"".join(chunks) == data
    part = b"".join([c async for c in backend.get("big/blob", offset=1000, length=5000)])
    assert part == data[1000:6000]
    digest, size = await sha256_of(backend, "big/blob")
    assert size == len(data) and len(digest) == 64


async def test_list_stat_copy_delete(backend: Storage) -> None:
    await backend.put("tenants/a/inbound/one.csv", b"1")
    await backend.put("tenants/a/inbound/sub/two.csv", b"22")
    await backend.put("tenants/b/inbound/three.csv", b"333")
    keys = [o.key for o in await backend.list("tenants/a/inbound")]
    assert keys == ["tenants/a/inbound/one.csv", "tenants/a/inbound/sub/two.csv"]
    assert (await backend.stat("tenants/a/inbound/sub/two.csv")).size == 2
    await backend.copy("tenants/a/inbound/one.csv", "tenants/a/received/1/one.csv")
    assert await backend.read("tenants/a/received/1/one.csv") == b"1"
    await backend.delete("tenants/a/inbound/one.csv")
    assert await backend.read("tenants/a/received/1/one.csv") == b"1"
    with pytest.raises(NotFound):
        await backend.stat("tenants/a/inbound/one.csv")
    with pytest.raises(NotFound):
        await backend.delete("tenants/a/inbound/one.csv")


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs", "a/../../b", "a//b", "a\\b", ""])
async def test_keys_cannot_escape_the_root(backend: Storage, key: str) -> None:
    with pytest.raises(StorageError):
        await backend.put(key, b"x")
