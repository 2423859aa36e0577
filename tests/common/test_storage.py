"""Both storage backends behave the same: atomic finalize, streaming and positional reads,
listing, copies; and on S3, parts that go up while a sequential upload is still arriving."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path
from typing import Any

import pytest

from courier.common.storage import (
    NotFound,
    S3Storage,
    Storage,
    StorageError,
    file_url,
    open_storage,
    sha256_of,
)
from tests.support.services import at_once, eventually

MiB = 1024 * 1024


@pytest.fixture(params=["file", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "file":
        return open_storage(file_url(tmp_path / "store"))
    return open_storage(request.getfixturevalue("s3_storage_url"))


@pytest.fixture
def s3(s3_storage_url: str) -> S3Storage:
    storage = open_storage(s3_storage_url)
    assert isinstance(storage, S3Storage)
    return storage


def s3_calls(storage: S3Storage, operation: str) -> list[dict[str, Any]]:
    """The parameters of every `operation` request the client sends from now on."""
    seen: list[dict[str, Any]] = []
    storage.client.meta.events.register(
        f"before-parameter-build.s3.{operation}", lambda params, **_: seen.append(params)
    )
    return seen


def pending_uploads(storage: S3Storage) -> list[dict[str, Any]]:
    return storage.client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", [])


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


async def test_positional_reads_at_offsets_and_at_the_end(backend: Storage) -> None:
    data = os.urandom(3 * MiB + 123)
    await backend.put("out/blob.bin", data)
    reader = await backend.open_read("out/blob.bin")
    try:
        assert reader.size == len(data)
        assert await reader.read_at(0, 10) == data[:10]
        assert await reader.read_at(1000, 5000) == data[1000:6000]
        assert await reader.read_at(2 * MiB, 1 * MiB) == data[2 * MiB : 3 * MiB]
        assert await reader.read_at(len(data) - 10, 100) == data[-10:]  # short read
        assert await reader.read_at(len(data), 10) == b""
        assert await reader.read_at(len(data) + 5, 10) == b""
        assert await reader.read_at(5, 0) == b""
        assert await reader.read_at(0, len(data)) == data
        with pytest.raises(StorageError):
            await reader.read_at(-1, 10)
    finally:
        await reader.close()


async def test_reads_in_any_order_return_the_right_bytes(backend: Storage) -> None:
    data = os.urandom(5 * MiB)
    await backend.put("out/blob.bin", data)
    block = 96 * 1024
    offsets = list(range(0, len(data), block))
    random.Random(7).shuffle(offsets)
    reader = await backend.open_read("out/blob.bin")
    try:
        got = {offset: await reader.read_at(offset, block) for offset in offsets}
    finally:
        await reader.close()
    assert b"".join(got[o] for o in sorted(got)) == data


async def test_opening_a_missing_object_for_reading_is_not_found(backend: Storage) -> None:
    await backend.put("out/sub/x.csv", b"x")
    for key in ("out/nope.csv", "out/sub", "out/sub/x.csv/y"):
        with pytest.raises(NotFound):
            await backend.open_read(key)
    with pytest.raises(StorageError):
        await backend.open_read("../x")


async def test_s3_sequential_reads_are_served_from_a_few_large_gets(s3: S3Storage) -> None:
    data = os.urandom(20 * MiB + 777)
    await s3.put("out/big.bin", data)
    gets = s3_calls(s3, "GetObject")
    reader = await s3.open_read("out/big.bin")
    try:
        block = 32 * 1024
        got = [await reader.read_at(o, block) for o in range(0, reader.size, block)]
        assert b"".join(got) == data
        # Windows of 1, 2, 4, 8 and 8 MiB: five GETs for 641 reads.
        assert len(gets) <= 6
        gets.clear()
        assert await reader.read_at(123_456, 1000) == data[123_456:124_456]
        assert [g["Range"] for g in gets] == ["bytes=123456-124455"]
    finally:
        await reader.close()


async def test_s3_reader_fails_rather_than_mix_two_versions(s3: S3Storage) -> None:
    await s3.put("out/x.bin", b"a" * (3 * MiB))
    reader = await s3.open_read("out/x.bin")
    try:
        assert await reader.read_at(0, 10) == b"a" * 10
        await s3.put("out/x.bin", b"b" * (3 * MiB))
        with pytest.raises(StorageError, match="replaced"):
            await reader.read_at(2 * MiB + 5, 10)
    finally:
        await reader.close()


async def _write_sequentially(storage: Storage, key: str, data: bytes, block: int) -> None:
    writer = await storage.open_write(key)
    for offset in range(0, len(data), block):
        await writer.write(data[offset : offset + block], offset)
    await writer.finalize()


async def test_s3_sequential_upload_goes_up_in_parts_while_it_arrives(s3: S3Storage) -> None:
    data = os.urandom(20 * MiB + 12_345)
    parts = s3_calls(s3, "UploadPart")
    writer = await s3.open_write("in/big.bin")
    block = 256 * 1024
    for offset in range(0, 17 * MiB, block):
        await writer.write(data[offset : offset + block], offset)
    [upload] = pending_uploads(s3)

    def sent() -> list[int]:
        listed = s3.client.list_parts(
            Bucket=s3.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
        )
        return [p["PartNumber"] for p in listed.get("Parts", [])]

    assert await eventually(lambda: at_once(sorted(sent()) == [1, 2]))
    assert not await s3.exists("in/big.bin")
    for offset in range(17 * MiB, len(data), block):
        await writer.write(data[offset : offset + block])
    info = await writer.finalize()
    assert info.size == len(data)
    assert sorted(p["PartNumber"] for p in parts) == [1, 2, 3]
    assert await s3.read("in/big.bin") == data
    assert (await sha256_of(s3, "in/big.bin"))[0] == hashlib.sha256(data).hexdigest()
    assert pending_uploads(s3) == []


async def test_s3_small_object_is_one_put(s3: S3Storage) -> None:
    created = s3_calls(s3, "CreateMultipartUpload")
    data = os.urandom(8 * MiB - 1)
    await _write_sequentially(s3, "in/small.bin", data, 64 * 1024)
    assert created == []
    assert await s3.read("in/small.bin") == data


@pytest.mark.parametrize("block", [64 * 1024, 3 * MiB + 17])
async def test_out_of_order_writes_produce_the_same_bytes(backend: Storage, block: int) -> None:
    data = os.urandom(20 * MiB + 99)
    offsets = list(range(0, len(data), block))
    random.Random(block).shuffle(offsets)
    writer = await backend.open_write("in/shuffled.bin")
    for offset in offsets:
        await writer.write(data[offset : offset + block], offset)
    await writer.finalize()
    assert await backend.read("in/shuffled.bin") == data
    if isinstance(backend, S3Storage):
        assert pending_uploads(backend) == []


async def test_rewriting_what_was_already_sent_still_gives_the_written_bytes(
    backend: Storage,
) -> None:
    """Parts already uploaded change under a rewrite: the object must show the rewrite."""
    data = bytearray(os.urandom(20 * MiB))
    aborts = s3_calls(backend, "AbortMultipartUpload") if isinstance(backend, S3Storage) else []
    writer = await backend.open_write("in/rewritten.bin")
    block = 512 * 1024
    for offset in range(0, 18 * MiB, block):
        await writer.write(bytes(data[offset : offset + block]), offset)
    patch = os.urandom(4096)
    data[MiB : MiB + len(patch)] = patch
    await writer.write(patch, MiB)
    for offset in range(18 * MiB, len(data), block):
        await writer.write(bytes(data[offset : offset + block]), offset)
    # A hole written last and a write past the end leave zeros in between.
    await writer.write(b"tail", len(data) + 10)
    expected = bytes(data) + b"\0" * 10 + b"tail"
    info = await writer.finalize()
    assert info.size == len(expected)
    assert await backend.read("in/rewritten.bin") == expected
    if isinstance(backend, S3Storage):
        assert len(aborts) == 1 and pending_uploads(backend) == []


async def test_s3_a_failed_part_is_sent_again_from_the_spool(
    s3: S3Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = s3.client.upload_part
    calls = 0

    def flaky(**kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionError("the network went away")
        return real(**kwargs)

    monkeypatch.setattr(s3.client, "upload_part", flaky)
    created = s3_calls(s3, "CreateMultipartUpload")
    data = os.urandom(26 * MiB)
    await _write_sequentially(s3, "in/flaky.bin", data, MiB)
    assert await s3.read("in/flaky.bin") == data
    assert len(created) == 2  # the first upload was dropped, the spool went up again
    assert pending_uploads(s3) == []


@pytest.mark.parametrize("size", [100, 20 * MiB])
@pytest.mark.parametrize("order", ["sequential", "shuffled"])
async def test_aborted_upload_leaves_no_object_and_no_pending_upload(
    backend: Storage, size: int, order: str
) -> None:
    data = os.urandom(size)
    block = 1 * MiB
    offsets = list(range(0, size, block))
    if order == "shuffled":
        offsets.reverse()
    writer = await backend.open_write("in/cut.bin")
    for offset in offsets:
        await writer.write(data[offset : offset + block], offset)
    await writer.abort()
    assert await backend.list("in") == []
    if isinstance(backend, S3Storage):
        assert pending_uploads(backend) == []
